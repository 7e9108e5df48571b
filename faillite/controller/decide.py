"""The reconcile decision: desired state + observed state -> actions, each tagged with why.

Pure (no I/O, no clocks: ``now`` is an argument), so the controller, the simulator and the
tests can all run it. Failover itself is a program computed by ``faillite.placement.replan``
and executed step by step; while an app's program runs, ``decide`` leaves that app alone.

The steady-state rules, per app in the plan:
- the replica the app is served from stays loaded;
- the plan's primary is loaded on its node, and once it is ready, traffic converges to it
  (this one rule does initial deployment, failback and climbing back after a failover);
- a warm backup is loaded on its node; a cold backup only reserves memory (nothing to do);
- a shared warm fallback (policy faillite-shared) is loaded on its node, whichever app is busy:
  it answers for several apps, and keeps doing so while one of them recovers.
Per live node, a loaded model no app needs is unloaded after a grace period, so clients that
still hold the old route see the new one before the replica disappears. A node rejoining
after being declared dead is cleaned: every stale replica on it is unloaded at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from faillite.controller.states import AppState, NodeState
from faillite.placement.model import Mode, Plan

__all__ = [
    "Action",
    "Desired",
    "Load",
    "NodeView",
    "Observed",
    "Replica",
    "SetServing",
    "Unload",
    "decide",
    "needed",
    "unneeded",
]


_LIVE = (NodeState.ALIVE, NodeState.SUSPECT)


@dataclass(frozen=True, order=True)
class Replica:
    node: str
    variant: str


@dataclass(frozen=True)
class Load:
    replica: Replica
    app: str
    reason: str


@dataclass(frozen=True)
class Unload:
    replica: Replica
    reason: str


@dataclass(frozen=True)
class SetServing:
    """Serve ``app`` from ``replica`` (None: nowhere, e.g. RECOVERING or UNAVAILABLE)."""

    app: str
    replica: Replica | None
    state: AppState
    reason: str
    stone: bool = False  # the replica is a progressive failover's stepping stone


Action = Load | Unload | SetServing


@dataclass(frozen=True)
class NodeView:
    state: NodeState
    loaded: frozenset[str] = frozenset()
    loading: frozenset[str] = frozenset()
    connected: bool = True  # False: known (e.g. from before a controller restart) but not heard from yet

    @property
    def live(self) -> bool:
        """Decisions may act on this node: it is up and we know what it holds."""
        return self.connected and self.state in _LIVE


@dataclass(frozen=True)
class Desired:
    plan: Plan
    serving: Mapping[str, Replica | None]  # where each app is served now
    states: Mapping[str, AppState]
    busy: Set[str] = frozenset()  # apps whose failover program is running
    pinned: Set[Replica] = frozenset()  # replicas a running program needs
    home: Mapping[str, Replica] = field(default_factory=dict)  # each app's primary with every node up


@dataclass(frozen=True)
class Observed:
    nodes: Mapping[str, NodeView]
    undesired_since: Mapping[Replica, float] = field(default_factory=dict)


def needed(desired: Desired) -> set[Replica]:
    """Replicas some app needs loaded now: where it is served, its plan primary, its warm backup."""
    result: set[Replica] = set(desired.pinned)
    for asg in desired.plan:
        current = desired.serving.get(asg.app)
        if current is not None:
            result.add(current)
        if asg.app in desired.busy:
            continue
        result.add(Replica(asg.primary_node, asg.primary_variant))
        if asg.backup is not None and asg.backup.mode is Mode.WARM:
            result.add(Replica(asg.backup.node, asg.backup.variant))
    result.update(Replica(s.node, s.variant) for s in desired.plan.shared)
    return result


def unneeded(desired: Desired, observed: Observed) -> set[Replica]:
    """Replicas loaded on live nodes that no app needs (their unload grace clock should run)."""
    keep = needed(desired)
    return {
        Replica(node, variant)
        for node, view in observed.nodes.items()
        if view.live
        for variant in view.loaded
        if Replica(node, variant) not in keep
    }


def decide(
    desired: Desired,
    observed: Observed,
    *,
    now: float,
    unload_grace_s: float,
    stale: Set[Replica] | None = None,
) -> list[Action]:
    """``stale``: ``unneeded(desired, observed)`` when the caller computed it already."""
    actions: list[Action] = []
    live = {n for n, v in observed.nodes.items() if v.live}

    def ready(r: Replica) -> bool:
        return r.node in live and r.variant in observed.nodes[r.node].loaded

    def want(r: Replica, app: str, reason: str) -> None:
        view = observed.nodes.get(r.node)
        if r.node in live and view is not None and r.variant not in view.loaded | view.loading:
            actions.append(Load(r, app, reason))

    for asg in desired.plan:
        app = asg.app
        if app in desired.busy:
            continue
        current = desired.serving.get(app)
        primary = Replica(asg.primary_node, asg.primary_variant)
        if primary != current:
            want(primary, app, "plan primary" if current is None else "converge to the plan's primary")
            if ready(primary):
                at_home = desired.home.get(app, primary) == primary
                state = AppState.PRIMARY if at_home else AppState.FAILED_OVER
                why = _why_switch(desired.states.get(app)) if at_home else "climb back to a better variant"
                actions.append(SetServing(app, primary, state, why))
        if asg.backup is not None and asg.backup.mode is Mode.WARM:
            want(Replica(asg.backup.node, asg.backup.variant), app, "warm backup")
    for shared in desired.plan.shared:
        want(Replica(shared.node, shared.variant), shared.apps[0], "shared warm fallback")

    if stale is None:
        stale = unneeded(desired, observed)
    for node, view in sorted(observed.nodes.items()):
        if view.state is NodeState.REJOINING:
            for variant in sorted(view.loaded):
                why = "stale replica on a node that was declared dead"
                actions.append(Unload(Replica(node, variant), why))
            continue
        for variant in sorted(view.loaded - view.loading):
            r = Replica(node, variant)
            since = observed.undesired_since.get(r)
            if r in stale and since is not None and now - since >= unload_grace_s:
                actions.append(Unload(r, "no app needs it"))
    return actions


def _why_switch(state: AppState | None) -> str:
    if state in (AppState.FAILED_OVER, AppState.STEPPING, AppState.RECOVERING):
        return "failback: the primary is ready again"
    if state is AppState.UNAVAILABLE:
        return "recovered: the primary is ready"
    return "deployed: the primary is ready"
