"""The replica lifecycle table, checked exhaustively (every pair of states)."""

from __future__ import annotations

import itertools

import pytest

from faillite.agent.state import TRANSITIONS, InvalidTransition, ReplicaState, check_transition

S = ReplicaState
ALLOWED = {
    (S.UNLOADED, S.LOADING),
    (S.LOADING, S.READY),
    (S.LOADING, S.UNLOADED),
    (S.LOADING, S.FAILED),
    (S.READY, S.DRAINING),
    (S.DRAINING, S.UNLOADED),
    (S.FAILED, S.LOADING),
    (S.FAILED, S.UNLOADED),
}


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(ReplicaState)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(ReplicaState, repeat=2)))
def test_every_transition(current: ReplicaState, target: ReplicaState) -> None:
    if (current, target) in ALLOWED:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition, match=f"from {current.value} to {target.value}"):
            check_transition(current, target)


def test_every_state_can_get_back_to_ready_and_to_unloaded() -> None:
    def reachable(start: ReplicaState) -> set[ReplicaState]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert all(S.READY in reachable(state) and S.UNLOADED in reachable(state) for state in ReplicaState)
