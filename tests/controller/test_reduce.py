"""``reduce.apply``: the only writer of the state refuses what the state tables forbid."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faillite.controller.decide import Replica, SetServing
from faillite.controller.effects import EndProgram, LoadDone, PutNode, SetAgent, StartProgram, UpdateProgram
from faillite.controller.model import AgentView
from faillite.controller.reduce import apply
from faillite.controller.states import AppState, InvalidTransition, NodeState
from faillite.placement import Action, ActionKind
from tests.controller.policy_world import SMALL, add_node, empty_state


def test_app_and_node_transitions_outside_the_tables_are_refused() -> None:
    state = empty_state()
    add_node(state, "n1")
    apply(state, SetServing("a", None, AppState.PENDING, "new"))
    with pytest.raises(InvalidTransition, match="pending to stepping"):
        apply(state, SetServing("a", Replica("n1", SMALL), AppState.STEPPING, "no"))
    apply(state, SetServing("a", Replica("n1", SMALL), AppState.PRIMARY, "deployed"))
    record = state.nodes["n1"]
    with pytest.raises(InvalidTransition, match="alive to rejoining"):
        apply(state, PutNode(replace(record, state=NodeState.REJOINING), "no"))
    with pytest.raises(InvalidTransition, match="epoch 3 cannot go back to 2"):
        apply(state, PutNode(replace(record, epoch=3), "up"))
        apply(state, PutNode(replace(record, epoch=2), "down"))


def test_a_late_outcome_of_an_old_program_run_changes_nothing() -> None:
    state = empty_state()
    steps = (Action(ActionKind.SWITCH, "a", "n1", SMALL, "s"),)
    apply(state, StartProgram("a", steps))
    old = state.programs["a"]
    apply(state, StartProgram("a", steps))
    apply(state, UpdateProgram(replace(old, position=1)))
    apply(state, EndProgram("a", old.run, "old run"))
    assert state.programs["a"].run == old.run + 1 and state.programs["a"].position == 0


def test_a_finished_load_is_loaded_only_on_a_node_with_a_session() -> None:
    state = empty_state()
    add_node(state, "n1")
    apply(state, LoadDone(Replica("n1", SMALL), True))
    assert state.loaded("n1") == {SMALL}
    apply(state, SetAgent("n1", None, "dead"))
    apply(state, LoadDone(Replica("n1", "digits-mlp-8"), True))  # after the node died
    assert "n1" not in state.agents
    apply(state, SetAgent("n1", AgentView()))
    assert state.loaded("n1") == frozenset()
