"""Agents coming and going: registration (with epochs), status reports, suspicion.

Registration: a node never seen gets epoch 1; one that re-registers with its current epoch
(e.g. after a controller restart) is adopted as it is; one back from the dead gets the next
epoch (fencing: requests stamped with the old one are refused) and REJOINING until its stale
replicas are unloaded (``reconcile.rejoined``). A node known alive that comes back under
another epoch is an old incarnation gone: ``fail_first`` says so, and the runner applies
``failover.node_dead`` for it before ``node_registered``.
"""

from __future__ import annotations

from collections.abc import Iterable

from faillite.controller.effects import (
    Effect,
    Emit,
    EventKind,
    PublishRoutes,
    PutNode,
    SetAgent,
    SetNodeState,
    Wake,
)
from faillite.controller.model import AgentView, ControlState, NodeRecord
from faillite.controller.states import NodeState

__all__ = ["agent_status", "fail_first", "node_heard", "node_registered", "node_suspected"]


def fail_first(state: ControlState, node: str, epoch: int) -> str | None:
    """The reason to declare ``node`` dead before registering it under ``epoch``, if any."""
    known = state.nodes.get(node)
    if known is None or known.state is NodeState.DEAD or epoch == known.epoch:
        return None
    return "came back as a new incarnation"


def node_registered(
    state: ControlState,
    node: str,
    *,
    url: str,
    memory_bytes: int,
    cores: float,
    domain: str | None,
    pid: int | None,
    epoch: int,
    loaded: Iterable[str] = (),
) -> list[Effect]:
    """``epoch``: the one the agent claims (0 for a fresh agent). The new record's epoch is in
    the ``PutNode`` effect (the first one of the list)."""
    known = state.nodes.get(node)
    adopt = known is not None and known.state is not NodeState.DEAD and epoch == known.epoch
    if known is None:
        new, node_state, kind = 1, NodeState.ALIVE, EventKind.NODE_REGISTERED
    elif adopt:
        new, node_state, kind = known.epoch, NodeState.ALIVE, EventKind.NODE_ADOPTED
    else:
        new, node_state, kind = known.epoch + 1, NodeState.REJOINING, EventKind.NODE_REGISTERED
    models = frozenset(loaded)
    record = NodeRecord(node, url, memory_bytes, cores, domain, pid, new, node_state)
    fields = {"node": node, "epoch": new, "url": url, "state": node_state.value, "loaded": sorted(models)}
    return [
        PutNode(record, kind.value),
        SetAgent(node, AgentView(models, 0, True), "registered"),
        Emit(kind, fields),
        PublishRoutes(f"{node} registered"),
        Wake(f"{node} registered"),
    ]


def agent_status(state: ControlState, node: str, loaded: Iterable[str], used_bytes: int) -> list[Effect]:
    """An agent's report of what it holds (the reconcile loop wakes when that changed)."""
    agent = state.agents.get(node)
    if agent is None:
        return []
    models = frozenset(loaded)
    effects: list[Effect] = [SetAgent(node, AgentView(models, used_bytes, agent.connected), "status")]
    if models != agent.loaded:
        effects.append(Wake(f"{node} holds other models"))
    return effects


def node_suspected(state: ControlState, node: str, reason: str) -> list[Effect]:
    record = state.nodes.get(node)
    if record is None or record.state not in (NodeState.ALIVE, NodeState.SUSPECT):
        return []
    effects: list[Effect] = [Emit(EventKind.FAILURE_SUSPECTED, {"node": node, "reason": reason})]
    if record.state is NodeState.ALIVE:
        effects.append(SetNodeState(node, NodeState.SUSPECT, reason))
    return effects


def node_heard(state: ControlState, node: str) -> list[Effect]:
    """A beat after a suspicion: a SUSPECT node is ALIVE again."""
    record = state.nodes.get(node)
    if record is None or record.state is not NodeState.SUSPECT:
        return []
    return [SetNodeState(node, NodeState.ALIVE, "heard again after a suspicion")]
