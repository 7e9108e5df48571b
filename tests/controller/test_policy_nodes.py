"""Registration with epochs, agent reports and suspicion (policy.nodes) on hand-made states."""

from __future__ import annotations

from faillite.controller import policy
from faillite.controller.effects import PutNode
from faillite.controller.reduce import apply_all
from faillite.controller.states import NodeState
from tests.controller.policy_world import MIB, SMALL, emitted, empty_state


def register(state, node: str, epoch: int, loaded: tuple[str, ...] = ()) -> list:  # type: ignore[no-untyped-def,type-arg]
    effects = policy.node_registered(
        state,
        node,
        url=f"http://{node}",
        memory_bytes=8 * MIB,
        cores=1.0,
        domain=None,
        pid=1,
        epoch=epoch,
        loaded=loaded,
    )
    apply_all(state, effects)
    return effects


def test_epochs_new_adopted_and_fenced() -> None:
    state = empty_state()
    first = register(state, "n1", 0)
    assert isinstance(first[0], PutNode) and first[0].record.epoch == 1
    assert emitted(first, "node_registered")[0]["state"] == "alive"
    adopted = register(state, "n1", 1, (SMALL,))
    assert emitted(adopted, "node_adopted")[0]["loaded"] == [SMALL]
    assert policy.fail_first(state, "n1", 1) is None
    assert policy.fail_first(state, "n1", 5) == "came back as a new incarnation"
    apply_all(state, policy.node_dead(state, "n1", 10.0))
    assert policy.fail_first(state, "n1", 1) is None  # dead already
    back = register(state, "n1", 1, (SMALL,))
    assert state.nodes["n1"].epoch == 2 and state.nodes["n1"].state is NodeState.REJOINING
    assert emitted(back, "node_registered")[0]["epoch"] == 2


def test_status_reports_and_suspicion() -> None:
    state = empty_state()
    register(state, "n1", 0)
    effects = policy.agent_status(state, "n1", [SMALL], 3 * MIB)
    assert effects[-1].reason == "n1 holds other models"  # type: ignore[union-attr]  # a wake
    apply_all(state, effects)
    assert state.agents["n1"].used_bytes == 3 * MIB and state.loaded("n1") == {SMALL}
    assert len(policy.agent_status(state, "n1", [SMALL], 4 * MIB)) == 1  # same models: no wake
    apply_all(state, policy.node_suspected(state, "n1", "client timeout"))
    assert state.nodes["n1"].state is NodeState.SUSPECT
    apply_all(state, policy.node_heard(state, "n1"))
    assert state.nodes["n1"].state is NodeState.ALIVE
    assert policy.node_heard(state, "n1") == []
