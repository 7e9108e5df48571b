"""Settling after a failover: climb failed-over apps back up toward their home variant, as far
as the surviving memory allows with every app still protected, without waiting for the node.

An app answers from a smaller variant after a failover. Once no failover program runs, the
controller asks the pure ``faillite.placement.settle`` for the most accurate variant each such
app can run while every protected app stays protected (other apps' cold reservations may
move or shrink). The climbs become the plan in one step, and the reconcile rule "traffic
converges to the plan's primary once loaded" does the rest: load, switch, unload. Apps for
which nothing better fits are *settled*: ``app_settled`` is said once per failover. A climb
whose load is refused (the agent's memory is fuller than the plan thinks) is undone and not
retried for a while.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from faillite.controller.core import Controller
from faillite.controller.decide import Replica
from faillite.controller.events import EventKind
from faillite.controller.planning import build_instance
from faillite.controller.states import AppState, NodeState
from faillite.placement import Assignment, Mode, Node, Plan
from faillite.placement.settle import SettleResult, settle

__all__ = ["climb_once"]

_RETRY_S = 5.0  # a refused climb waits this long (the agent's memory may free up)


async def climb_once(controller: Controller) -> None:
    cluster = controller.cluster
    _forget_settled(controller)
    if controller.programs or controller.reprotecting or cluster.plan == cluster.home_plan:
        return
    if all(n.state is NodeState.ALIVE for n in cluster.nodes.values()):
        return  # failback restores the home plan instead
    _undo_refused(controller)
    if controller.climbing:
        return  # the last climbs are still loading
    live = set(controller.live_nodes())
    home = {a.app: a.primary_variant for a in cluster.home_plan}
    now = time.monotonic()
    asked = sorted(
        app
        for app, serving in cluster.serving.items()
        if serving.state is AppState.FAILED_OVER
        and serving.replica is not None
        and app in home
        and controller.settled.get(app) != serving.replica
        and controller.climb_blocked.get(app, 0.0) <= now
    )
    if not asked:
        return
    if _busy(controller, live):
        return  # loads in flight or leftovers still loaded: what fits is not known yet
    plan = cluster.plan
    placed = [a for a in plan if a.primary_node in live and a.app in cluster.apps]
    inst = build_instance(
        [cluster.apps[a.app] for a in placed],
        _as_agents_see_them(controller, plan),
        controller.families,
        controller.params,
        {a.app: (a.primary_node, a.primary_variant) for a in placed},
    )
    current = Plan(tuple(placed), plan.shared)
    asked = [a for a in asked if any(p.app == a for p in placed)]
    result = await asyncio.to_thread(settle, inst, current, home, asked, policy=controller.config.policy)
    if controller.programs or controller.reprotecting or cluster.plan != plan:
        return  # the world moved while settle ran: ask again next time
    _adopt(controller, plan, placed, result)


def _busy(controller: Controller, live: set[str]) -> bool:
    """Loads in flight, or replicas no app needs still loaded (unload grace) on a live node."""
    if any(controller.loading[n] for n in live):
        return True
    return any(r.node in live for r in controller.undesired_since)


def _as_agents_see_them(controller: Controller, plan: Plan) -> list[Node]:
    """Live nodes, each budget less what its agent charges beyond the plan's estimates of what
    it holds (measured footprints over their profiles): settling plans in the agents' memory."""
    planned: dict[str, set[tuple[str, str]]] = {}
    for a in plan:
        spec = controller.cluster.apps.get(a.app)
        if spec is None:
            continue
        planned.setdefault(a.primary_node, set()).add((spec.family, a.primary_variant))
        if a.backup is not None and a.backup.mode is Mode.WARM:
            planned.setdefault(a.backup.node, set()).add((spec.family, a.backup.variant))
    for sf in plan.shared:
        planned.setdefault(sf.node, set()).add((sf.family, sf.variant))
    nodes = []
    for n in controller.planning_nodes():
        hb = controller.heartbeats.get(n.id)
        if hb is None:
            nodes.append(n)
            continue
        estimate = sum(
            controller.families[f].variant(v).memory_bytes
            for f, v in planned.get(n.id, ())
            if f in controller.families and v in hb.loaded
        )
        extra = max(0, hb.used_bytes - estimate)
        nodes.append(dataclasses.replace(n, memory_bytes=max(0, n.memory_bytes - extra)))
    return nodes


def _adopt(controller: Controller, plan: Plan, placed: list[Assignment], result: SettleResult) -> None:
    cluster = controller.cluster
    if result.climbs:
        kept = tuple(a for a in plan if a not in placed)  # apps on no live node stay as they are
        before = plan.by_app()
        cluster.set_plans(Plan(result.plan.assignments + kept, result.plan.shared))
        for c in result.climbs:
            controller.climbing[c.app] = before[c.app]
            controller.events.emit(
                EventKind.PLAN_CHANGED,
                reason=f"climb back: {c.app} from {c.from_variant} to {c.variant}",
                app=c.app,
                node=c.node,
            )
        controller.wake()
    now_plan = cluster.plan.by_app()
    for app in result.settled:
        serving = cluster.serving.get(app)
        asg = now_plan.get(app)
        if serving is None or serving.replica is None or asg is None:
            continue
        if serving.replica != Replica(asg.primary_node, asg.primary_variant):
            continue  # not yet answering from where the plan has it: not settled
        controller.settled[app] = serving.replica
        controller.events.emit(
            EventKind.APP_SETTLED,
            app=app,
            node=serving.replica.node,
            variant=serving.replica.variant,
            protected=_protected(cluster.plan, asg),
        )


def _protected(plan: Plan, asg: Assignment) -> bool:
    return asg.backup is not None or plan.shared_for(asg.app) is not None


def _forget_settled(controller: Controller) -> None:
    """An app back home (or failing over again) settles anew after its next failover."""
    for app in list(controller.settled):
        serving = controller.cluster.serving.get(app)
        if serving is None or serving.state is not AppState.FAILED_OVER:
            controller.settled.pop(app)


def _undo_refused(controller: Controller) -> None:
    """A climb whose load was refused goes back to where it was."""
    cluster = controller.cluster
    for app, previous in list(controller.climbing.items()):
        current = cluster.plan.by_app().get(app)
        serving = cluster.serving.get(app)
        if current is None or serving is None:
            controller.climbing.pop(app)
            continue
        if serving.replica is not None and serving.replica.variant == current.primary_variant:
            controller.climbing.pop(app)  # done: the app serves the better variant
            continue
        refused = any(
            r.node == current.primary_node and r.variant == current.primary_variant
            for r in controller.retry_after
        )
        if refused:
            controller.climbing.pop(app)
            controller.climb_blocked[app] = time.monotonic() + _RETRY_S
            cluster.set_plans(
                Plan(
                    tuple(previous if a.app == app else a for a in cluster.plan),
                    cluster.plan.shared,
                )
            )
            controller.events.emit(
                EventKind.PLAN_CHANGED, reason=f"climb back of {app} refused; undone", app=app
            )
