"""Climbing back: after a failover, move apps back up toward their primary variant when the
surviving capacity allows, one app at a time, without waiting for the failed node.

An app runs on a smaller variant after a failover. Every few seconds, while some node of the
original plan is still dead and no failover program runs, the controller asks the planner
whether the next-better variant of one such app fits where the app runs now (everything else
pinned, surviving backups kept). If so it becomes the plan, and the reconcile rule "traffic
converges to the plan's primary once loaded" does the rest: load, switch, unload. A climb
whose load is refused (the agent's memory is fuller than the plan thinks) is undone and not
retried for a while.
"""

from __future__ import annotations

import asyncio
import time

from faillite.controller.core import Controller
from faillite.controller.events import EventKind
from faillite.controller.planning import build_instance
from faillite.controller.states import AppState, NodeState
from faillite.placement import Plan, make_plan

__all__ = ["climb_once"]

_RETRY_S = 30.0


async def climb_once(controller: Controller) -> None:
    cluster = controller.cluster
    if controller.programs or cluster.plan == cluster.home_plan:
        return
    if all(n.state is NodeState.ALIVE for n in cluster.nodes.values()):
        return  # failback restores the home plan instead
    _undo_refused(controller)
    if controller.climbing:
        return  # one climb at a time: the last one is still loading
    home = cluster.home_plan.by_app()
    now = time.monotonic()
    for asg in cluster.plan:
        target = home.get(asg.app)
        spec = cluster.apps.get(asg.app)
        serving = cluster.serving.get(asg.app)
        if target is None or spec is None or serving is None or serving.state is not AppState.FAILED_OVER:
            continue
        if controller.climb_blocked.get(asg.app, 0.0) > now:
            continue
        better = _next_better(controller, spec.family, asg.primary_variant, target.primary_variant)
        if better is None:
            continue
        primaries = {a.app: (a.primary_node, a.primary_variant) for a in cluster.plan}
        primaries[asg.app] = (asg.primary_node, better)
        keep = {a.app: a.backup for a in cluster.plan if a.backup is not None}
        inst = build_instance(
            list(cluster.apps.values()),
            controller.planning_nodes(),
            controller.families,
            controller.params,
            primaries,
        )
        result = await asyncio.to_thread(make_plan, inst, method="greedy", keep=keep, best_effort=True)
        protected = sum(1 for a in cluster.plan if a.backup is not None)
        if (
            result.plan is None
            or sum(1 for a in result.plan if a.backup is not None) < protected  # never trade protection
            or controller.programs
            or cluster.plan.by_app().get(asg.app) != asg
        ):
            controller.climb_blocked[asg.app] = now + _RETRY_S
            continue
        controller.climbing[asg.app] = asg
        cluster.set_plans(result.plan)
        controller.events.emit(
            EventKind.PLAN_CHANGED,
            reason=f"climb back: {asg.app} from {asg.primary_variant} to {better}",
            app=asg.app,
            node=asg.primary_node,
        )
        controller.wake()
        return  # one app at a time


def _next_better(controller: Controller, family: str, current: str, home: str) -> str | None:
    """The least-memory variant more accurate than ``current``, up to the home variant."""
    fam = controller.families.get(family)
    if fam is None or current == home:
        return None
    now, ceiling = fam.variant(current), fam.variant(home)
    better = [v for v in fam.variants if now.accuracy < v.accuracy <= ceiling.accuracy]
    return min(better, key=lambda v: (v.memory_bytes, -v.accuracy)).name if better else None


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
            cluster.set_plans(Plan(tuple(previous if a.app == app else a for a in cluster.plan)))
            controller.events.emit(
                EventKind.PLAN_CHANGED, reason=f"climb back of {app} refused; undone", app=app
            )
