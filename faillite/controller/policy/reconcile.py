"""The steady state around ``decide``: reconcile, load outcomes, rejoin and failback.

A runner's reconcile pass applies, in order (each on the state the previous one left):
``reconcile(state, now)``, ``rejoined(state)``, ``failback(state)``.
"""

from __future__ import annotations

from faillite.controller.decide import Load, Observed, Replica, SetServing, Unload, decide, unneeded
from faillite.controller.effects import (
    Effect,
    Emit,
    EventKind,
    LoadDone,
    PublishRoutes,
    SetFailbackDue,
    SetNodeState,
    SetPlan,
    SetUndesired,
    Wake,
)
from faillite.controller.model import ControlState, Serving, desired, live_nodes, observed
from faillite.controller.policy.serving import switch
from faillite.controller.states import NodeState

__all__ = ["failback", "load_finished", "load_started", "reconcile", "rejoined", "unloaded"]


def reconcile(state: ControlState, now: float) -> list[Effect]:
    """``decide`` on the state: the unload grace clocks, loads (skipping one in flight), unloads
    (the runner starts them in the background), and switches to ready primaries."""
    want, seen = desired(state), observed(state, now)
    stale = unneeded(want, seen)
    since = {r: state.undesired_since.get(r, now) for r in stale}
    effects: list[Effect] = [SetUndesired(since)]
    loading = {n: set(v) for n, v in state.loading.items()}
    serving: dict[str, Serving | None] = {}
    grace = state.config.unload_grace_s
    for action in decide(want, Observed(seen.nodes, since), now=now, unload_grace_s=grace, stale=stale):
        if isinstance(action, Load):
            r = action.replica
            if r.variant in loading.setdefault(r.node, set()):
                continue
            loading[r.node].add(r.variant)
            effects += [*load_started(r, action.app, action.reason), action]
        elif isinstance(action, Unload):
            effects.append(action)
        elif isinstance(action, SetServing) and action.replica is not None:
            prior = serving.get(action.app, state.serving.get(action.app))
            effects += switch(
                state, action.app, action.replica, action.state, action.reason, now=now, before=prior
            )
            serving[action.app] = Serving(action.state, action.replica)
    return effects


def load_started(replica: Replica, app: str, reason: str) -> list[Effect]:
    fields = {"app": app, "node": replica.node, "variant": replica.variant, "reason": reason}
    return [Emit(EventKind.LOAD_STARTED, fields)]


def load_finished(
    state: ControlState,
    replica: Replica,
    app: str,
    ok: bool,
    now: float,
    *,
    ms: float | None = None,
    error: str = "",
) -> list[Effect]:
    """A load ended: ready (``ms``: how long it took), or refused/failed (``error``) and not
    retried by reconcile for ``config.load_retry_s``."""
    where = {"app": app, "node": replica.node, "variant": replica.variant}
    if ok:
        done = LoadDone(replica, True, reason="loaded")
        return [done, Emit(EventKind.LOAD_FINISHED, {**where, "ms": ms}), Wake("a load finished")]
    retry = now + state.config.load_retry_s
    return [
        LoadDone(replica, False, retry, reason=f"load failed: {error}"),
        Emit(EventKind.LOAD_FAILED, {**where, "error": error}),
        Wake("a load failed"),
    ]


def unloaded(replica: Replica, reason: str) -> list[Effect]:
    """An unload the agent confirmed."""
    fields = {"node": replica.node, "variant": replica.variant, "reason": reason}
    return [Emit(EventKind.UNLOADED, fields), Wake("an unload finished")]


def rejoined(state: ControlState) -> list[Effect]:
    """REJOINING nodes whose agent holds nothing (cleaned, nothing loading) serve again."""
    effects: list[Effect] = []
    for node in state.nodes.values():
        agent = state.agents.get(node.id)
        if (
            node.state is NodeState.REJOINING
            and agent is not None
            and not agent.loaded
            and not state.loading_on(node.id)
        ):
            effects += [
                SetNodeState(node.id, NodeState.ALIVE, "rejoined: its stale replicas are unloaded"),
                Emit(EventKind.NODE_REJOINED, {"node": node.id, "epoch": node.epoch}),
                PublishRoutes(f"{node.id} rejoined"),
                SetFailbackDue(True, f"{node.id} rejoined"),
            ]
    return effects


def failback(state: ControlState) -> list[Effect]:
    """After a rejoin, once no failover program runs (a rejoin during one waits for it): the
    home plan again, when every node it uses is live."""
    if not state.failback_due or state.programs:
        return []
    effects: list[Effect] = [SetFailbackDue(False, "failback considered")]
    home = state.home_plan
    home_nodes = {a.primary_node for a in home} | {a.backup.node for a in home if a.backup is not None}
    if state.plan == home or not home_nodes <= set(live_nodes(state)):
        return effects
    moved = [a.app for a in home if state.plan.by_app().get(a.app) != a]
    return [
        *effects,
        SetPlan(home, reason="failback: every home node is live"),
        Emit(EventKind.FAILBACK, {"apps": moved}),
        Wake("failback"),
    ]
