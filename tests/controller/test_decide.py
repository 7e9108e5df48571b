"""The pure reconcile decision: deployment, warm backups, convergence, grace, stale replicas."""

from __future__ import annotations

from faillite.controller.decide import Desired, Load, NodeView, Observed, Replica, SetServing, Unload, decide
from faillite.controller.states import AppState, NodeState
from faillite.placement import Assignment, Backup, Mode, Plan

ALIVE, DEAD, REJOINING = NodeState.ALIVE, NodeState.DEAD, NodeState.REJOINING
PLAN = Plan(
    (
        Assignment("a", "n1", "big", Backup("n2", "small", Mode.WARM)),
        Assignment("b", "n2", "big", Backup("n1", "big", Mode.COLD)),
    )
)


def run(
    desired: Desired,
    nodes: dict[str, NodeView],
    since: dict[Replica, float] | None = None,
    now: float = 100.0,
) -> list[object]:
    return decide(desired, Observed(nodes, since or {}), now=now, unload_grace_s=1.0)


def test_fresh_deployment_loads_primaries_and_warm_backups_only() -> None:
    actions = run(Desired(PLAN, {}, {}), {"n1": NodeView(ALIVE), "n2": NodeView(ALIVE)})
    assert set(actions) == {
        Load(Replica("n1", "big"), "a", "plan primary"),
        Load(Replica("n2", "small"), "a", "warm backup"),
        Load(Replica("n2", "big"), "b", "plan primary"),
    }  # the cold backup of b only reserves memory


def test_traffic_goes_to_a_primary_once_it_is_loaded() -> None:
    nodes = {
        "n1": NodeView(ALIVE, frozenset({"big"})),
        "n2": NodeView(ALIVE, loading=frozenset({"small", "big"})),
    }
    actions = run(Desired(PLAN, {}, {}), nodes)
    assert (
        SetServing("a", Replica("n1", "big"), AppState.PRIMARY, "deployed: the primary is ready") in actions
    )
    assert not [a for a in actions if isinstance(a, Load)]  # loading already: no duplicate loads
    assert not [a for a in actions if isinstance(a, SetServing) and a.app == "b"]


def test_failback_converges_to_the_plan_primary() -> None:
    serving = {"a": Replica("n2", "small"), "b": Replica("n2", "big")}
    states = {"a": AppState.FAILED_OVER, "b": AppState.PRIMARY}
    nodes = {"n1": NodeView(ALIVE, frozenset({"big"})), "n2": NodeView(ALIVE, frozenset({"small", "big"}))}
    actions = run(Desired(PLAN, serving, states), nodes)
    assert actions == [
        SetServing("a", Replica("n1", "big"), AppState.PRIMARY, "failback: the primary is ready again")
    ]


def test_busy_apps_are_left_to_their_program_and_pinned_replicas_stay() -> None:
    serving = {"a": Replica("n2", "stone"), "b": Replica("n2", "big")}
    nodes = {"n1": NodeView(ALIVE), "n2": NodeView(ALIVE, frozenset({"stone", "big", "small"}))}
    desired = Desired(PLAN, serving, {}, busy=frozenset({"a"}), pinned=frozenset({Replica("n2", "stone")}))
    actions = run(desired, nodes, since={Replica("n2", "stone"): 0.0})
    assert actions == []  # a is busy: no load of its primary; the stone is pinned; small is a's warm backup


def test_unneeded_replicas_wait_out_the_grace_period() -> None:
    serving = {"a": Replica("n1", "big"), "b": Replica("n2", "big")}
    nodes = {
        "n1": NodeView(ALIVE, frozenset({"big", "old"})),
        "n2": NodeView(ALIVE, frozenset({"big", "small"})),
    }
    desired = Desired(PLAN, serving, {"a": AppState.PRIMARY, "b": AppState.PRIMARY})
    old = Replica("n1", "old")
    assert run(desired, nodes, since={old: 99.5}) == []
    assert run(desired, nodes, since={old: 98.0}) == [Unload(old, "no app needs it")]
    assert run(desired, nodes, since={}) == []  # the clock has not started for it yet


def test_a_rejoining_node_is_cleaned_and_dead_or_silent_nodes_are_left_alone() -> None:
    serving = {"a": Replica("n1", "big")}
    nodes = {
        "n1": NodeView(ALIVE, frozenset({"big"})),
        "n2": NodeView(REJOINING, frozenset({"big", "small"})),
        "n3": NodeView(DEAD, frozenset({"x"})),
        "n4": NodeView(ALIVE, frozenset({"y"}), connected=False),
    }
    actions = run(Desired(PLAN, serving, {"a": AppState.PRIMARY}), nodes, since={Replica("n4", "y"): 0.0})
    unloads = {a.replica for a in actions if isinstance(a, Unload)}
    assert unloads == {Replica("n2", "big"), Replica("n2", "small")}
    assert not [a for a in actions if isinstance(a, Load)]  # n2 is not live yet: no loads on it
