"""Node and app state machines: every pair of states, allowed or refused, per the table."""

from __future__ import annotations

import itertools

import pytest

from faillite.controller.states import (
    APP_TRANSITIONS,
    NODE_TRANSITIONS,
    AppState,
    InvalidTransition,
    NodeState,
    check,
)

NODE_ALLOWED = {
    (NodeState.ALIVE, NodeState.SUSPECT),
    (NodeState.ALIVE, NodeState.DEAD),
    (NodeState.SUSPECT, NodeState.ALIVE),
    (NodeState.SUSPECT, NodeState.DEAD),
    (NodeState.DEAD, NodeState.REJOINING),
    (NodeState.REJOINING, NodeState.ALIVE),
    (NodeState.REJOINING, NodeState.DEAD),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(NodeState, NodeState)))
def test_node_transitions(current: NodeState, target: NodeState) -> None:
    if (current, target) in NODE_ALLOWED:
        assert check(current, target) is target
    else:
        with pytest.raises(InvalidTransition, match=f"from {current.value} to {target.value}"):
            check(current, target)


def test_dead_nodes_come_back_only_through_rejoining() -> None:
    assert NODE_TRANSITIONS[NodeState.DEAD] == frozenset({NodeState.REJOINING})


@pytest.mark.parametrize(("current", "target"), list(itertools.product(AppState, AppState)))
def test_app_transitions_follow_the_table(current: AppState, target: AppState) -> None:
    if target in APP_TRANSITIONS[current]:
        assert check(current, target) is target
    else:
        with pytest.raises(InvalidTransition):
            check(current, target)


def test_progressive_failover_path_is_allowed_and_shortcuts_are_not() -> None:
    path = [AppState.PRIMARY, AppState.RECOVERING, AppState.STEPPING, AppState.FAILED_OVER, AppState.PRIMARY]
    for current, target in itertools.pairwise(path):
        check(current, target)
    with pytest.raises(InvalidTransition):
        check(AppState.PRIMARY, AppState.STEPPING)  # a stepping stone only after recovery began
    with pytest.raises(InvalidTransition):
        check(AppState.PENDING, AppState.FAILED_OVER)  # never served, so nothing to fail over from
