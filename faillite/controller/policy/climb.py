"""Settling after a failover: climb failed-over apps back toward their home variant, as far as
the surviving memory allows with every app still protected, without waiting for the node.

A runner's climb pass::

    apply(climb_prelude(state, now))        # forget old settlements, undo refused climbs
    request = climb_request(state, now)     # None: nothing to ask now
    result = request.solve()                # faillite.placement.settle (the controller: in a thread)
    apply(climb_adopt(state, request, result))

The climbs become the plan in one step, and the reconcile rule "traffic converges to the
plan's primary once loaded" does the rest: load, switch, unload. Apps for which nothing better
fits are *settled*: ``app_settled`` is said once per failover. A climb whose load is refused
(the agent's memory is fuller than the plan thinks) is undone and not retried for
``config.climb_retry_s``. Nodes are budgeted as the agents see them: each live node's memory
less what its agent charges beyond the plan's estimates of what it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from faillite.controller.decide import Replica
from faillite.controller.effects import (
    Effect,
    Emit,
    EventKind,
    SetClimb,
    SetClimbBlocked,
    SetPlan,
    SetSettled,
    Wake,
)
from faillite.controller.model import ControlState, live_nodes, planning_nodes
from faillite.controller.planning import build_instance
from faillite.controller.states import AppState, NodeState
from faillite.placement import Assignment, Instance, Mode, Node, Plan
from faillite.placement.settle import SettleResult, settle

__all__ = [
    "ClimbRequest",
    "agents_view",
    "climb_adopt",
    "climb_prelude",
    "climb_request",
    "forget_settled",
    "undo_refused",
]


@dataclass(frozen=True)
class ClimbRequest:
    """What ``settle`` needs, and what the adoption checks the world against."""

    instance: Instance  # apps placed on live nodes; nodes budgeted as their agents see them
    current: Plan  # those apps' assignments (and the shared fallbacks)
    home: Mapping[str, str]  # app -> home variant
    asked: tuple[str, ...]
    policy: str
    plan: Plan  # the whole plan when asked: adopt nothing if it changed since
    placed: tuple[Assignment, ...]

    def solve(self) -> SettleResult:
        return settle(self.instance, self.current, self.home, self.asked, policy=self.policy)


def forget_settled(state: ControlState) -> list[Effect]:
    """An app back home (or failing over again) settles anew after its next failover."""
    return [
        SetSettled(app, None, "no longer failed over")
        for app in state.settled
        if (s := state.serving.get(app)) is None or s.state is not AppState.FAILED_OVER
    ]


def _climbing_possible(state: ControlState) -> bool:
    if state.programs or state.reprotecting or state.plan == state.home_plan:
        return False
    return not all(n.state is NodeState.ALIVE for n in state.nodes.values())  # else failback


def climb_prelude(state: ControlState, now: float) -> list[Effect]:
    effects = forget_settled(state)
    if _climbing_possible(state):
        effects += undo_refused(state, now)
    return effects


def undo_refused(state: ControlState, now: float) -> list[Effect]:
    """A climb whose load was refused goes back to where it was; climbs done are forgotten."""
    effects: list[Effect] = []
    plan = state.plan
    for app, previous in state.climbing.items():
        current = plan.by_app().get(app)
        serving = state.serving.get(app)
        if current is None or serving is None:
            effects.append(SetClimb(app, None, "app gone"))
            continue
        if serving.replica is not None and serving.replica.variant == current.primary_variant:
            effects.append(SetClimb(app, None, "done: the app serves the better variant"))
            continue
        target = Replica(current.primary_node, current.primary_variant)
        if target in state.retry_after:
            plan = Plan(tuple(previous if a.app == app else a for a in plan), plan.shared)
            effects += [
                SetClimb(app, None, "its load was refused"),
                SetClimbBlocked(app, now + state.config.climb_retry_s, "refused climb"),
                SetPlan(plan, reason=f"climb back of {app} refused"),
                Emit(EventKind.PLAN_CHANGED, {"reason": f"climb back of {app} refused; undone", "app": app}),
            ]
    return effects


def climb_request(state: ControlState, now: float) -> ClimbRequest | None:
    """None when no climb should be asked now: a program or re-protection runs, the plan is
    home, every node is back (failback does it), climbs are loading, nobody is asked, or loads
    are in flight or leftovers still loaded (what fits is not known yet)."""
    if not _climbing_possible(state) or state.climbing:
        return None
    live = set(live_nodes(state))
    home = {a.app: a.primary_variant for a in state.home_plan}
    asked = sorted(
        app
        for app, s in state.serving.items()
        if s.state is AppState.FAILED_OVER
        and s.replica is not None
        and app in home
        and state.settled.get(app) != s.replica
        and state.climb_blocked.get(app, 0.0) <= now
    )
    if not asked:
        return None
    if any(state.loading_on(n) for n in live) or any(r.node in live for r in state.undesired_since):
        return None
    plan = state.plan
    placed = tuple(a for a in plan if a.primary_node in live and a.app in state.apps)
    inst = build_instance(
        [state.apps[a.app] for a in placed],
        agents_view(state, plan),
        state.families,
        state.params,
        {a.app: (a.primary_node, a.primary_variant) for a in placed},
    )
    names = {a.app for a in placed}
    return ClimbRequest(
        inst,
        Plan(placed, plan.shared),
        home,
        tuple(a for a in asked if a in names),
        state.config.policy,
        plan,
        placed,
    )


def agents_view(state: ControlState, plan: Plan) -> list[Node]:
    """Live nodes, each budget less what its agent charges beyond the plan's estimates of what
    it holds (measured footprints over their profiles): settling plans in the agents' memory."""
    planned: dict[str, set[tuple[str, str]]] = {}
    for a in plan:
        spec = state.apps.get(a.app)
        if spec is None:
            continue
        planned.setdefault(a.primary_node, set()).add((spec.family, a.primary_variant))
        if a.backup is not None and a.backup.mode is Mode.WARM:
            planned.setdefault(a.backup.node, set()).add((spec.family, a.backup.variant))
    for sf in plan.shared:
        planned.setdefault(sf.node, set()).add((sf.family, sf.variant))
    nodes = []
    for n in planning_nodes(state):
        agent = state.agents.get(n.id)
        if agent is None:
            nodes.append(n)
            continue
        estimate = sum(
            state.families[f].variant(v).memory_bytes
            for f, v in planned.get(n.id, ())
            if f in state.families and v in agent.loaded
        )
        extra = max(0, agent.used_bytes - estimate)
        nodes.append(dataclasses.replace(n, memory_bytes=max(0, n.memory_bytes - extra)))
    return nodes


def climb_adopt(state: ControlState, request: ClimbRequest, result: SettleResult) -> list[Effect]:
    """Adopt the climbs (one plan change) and say which asked apps settled. Nothing if the
    world moved while settle ran (ask again next time)."""
    if state.programs or state.reprotecting or state.plan != request.plan:
        return []
    effects: list[Effect] = []
    plan = request.plan
    if result.climbs:
        placed = {a.app for a in request.placed}
        kept = tuple(a for a in plan if a.app not in placed)  # apps on no live node stay as they are
        before = plan.by_app()
        plan = Plan(result.plan.assignments + kept, result.plan.shared)
        effects.append(SetPlan(plan, reason="climb back"))
        for c in result.climbs:
            effects.append(SetClimb(c.app, before[c.app], f"climb to {c.variant}"))
            reason = f"climb back: {c.app} from {c.from_variant} to {c.variant}"
            effects.append(Emit(EventKind.PLAN_CHANGED, {"reason": reason, "app": c.app, "node": c.node}))
        effects.append(Wake("climbs planned"))
    now_plan = plan.by_app()
    for app in result.settled:
        serving = state.serving.get(app)
        asg = now_plan.get(app)
        if serving is None or serving.replica is None or asg is None:
            continue
        if serving.replica != Replica(asg.primary_node, asg.primary_variant):
            continue  # not yet answering from where the plan has it: not settled
        protected = asg.backup is not None or plan.shared_for(app) is not None
        effects.append(SetSettled(app, serving.replica, "nothing better fits"))
        fields = {
            "app": app,
            "node": serving.replica.node,
            "variant": serving.replica.variant,
            "protected": protected,
        }
        effects.append(Emit(EventKind.APP_SETTLED, fields))
    return effects
