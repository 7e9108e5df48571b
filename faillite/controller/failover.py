"""Failover programs: what happens to the apps of a node declared dead.

1. At once, apps with a warm backup on a live node are switched to it (clients holding the
   route table have already retried there; the push confirms it to everyone). The others with
   a shared warm fallback (policy faillite-shared) on a live node, loaded, are switched to it
   at the same moment (state STEPPING); their own backup then loads as in 2.
2. Cold apps go to RECOVERING, and ``faillite.placement.replan`` (run in a worker thread: the
   planner is CPU-bound) gives the ordered program: per app, load the fast stepping stone and
   switch to it, load the planned backup and switch, unload the stone; plus re-protection.
3. Each app's steps run as one task, started in the planner's order (most critical first), so
   agents, which serialize loads, take every stepping stone before any upgrade.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from faillite.controller.cluster import Serving
from faillite.controller.core import Controller
from faillite.controller.decide import Replica
from faillite.controller.events import EventKind
from faillite.controller.planning import build_instance
from faillite.controller.shared import shared_replica
from faillite.controller.states import AppState, NodeState
from faillite.placement import (
    SHARED_REASON,
    Action,
    ActionKind,
    Assignment,
    Mode,
    Plan,
    ReplanResult,
    replan,
)

__all__ = ["fail_over"]

log = logging.getLogger("faillite.controller")


def fail_over(controller: Controller, node: str, failed_at: float) -> None:
    cluster = controller.cluster
    for app, task in list(controller.programs.items()):  # programs that counted on that node
        serving = cluster.serving.get(app)  # e.g. on a shared fallback there, while its own backup loads
        on_node = serving is not None and serving.replica is not None and serving.replica.node == node
        if on_node or any(r.node == node for r in controller.pinned.get(app, ())):
            task.cancel()
            controller.programs.pop(app, None)
            controller.pinned.pop(app, None)
    plan = cluster.plan.by_app()
    served_here = {
        app for app, s in cluster.serving.items() if s.replica is not None and s.replica.node == node
    }
    unserved = {
        app for app in plan if cluster.serving.get(app) is None or cluster.serving[app].replica is None
    }
    planned_here = {a.app for a in cluster.plan if a.primary_node == node}  # e.g. a program's target
    if not served_here | planned_here:
        controller.publish_routes()
        return
    live = set(controller.live_nodes())
    cold = sorted(planned_here - served_here)  # served elsewhere or not yet: re-planned, not interrupted
    for app in sorted(served_here):
        controller.failed_at.setdefault(app, (failed_at, node))
        backup = plan[app].backup if app in plan else None
        if backup is not None and backup.mode is Mode.WARM and backup.node in live:
            controller.switch(app, Replica(backup.node, backup.variant), AppState.FAILED_OVER, "warm backup")
        else:
            cold.append(app)
            controller.cluster.set_serving(app, Serving(AppState.RECOVERING))
            fallback = shared_replica(controller, app, live - {node})
            if fallback is not None:  # answers now; the app's own backup loads meanwhile
                controller.switch(app, fallback, AppState.STEPPING, SHARED_REASON, stone=True)
    for app in sorted(planned_here & unserved):
        controller.cluster.set_serving(app, Serving(AppState.RECOVERING))
    controller.publish_routes()
    dead = sorted(n.id for n in cluster.nodes.values() if n.state is NodeState.DEAD)
    task = controller.spawn(_recover(controller, dead, cold))
    for app in cold:
        controller.programs[app] = task


async def _recover(controller: Controller, dead: list[str], cold: list[str]) -> None:
    cluster, config = controller.cluster, controller.config
    try:
        specs = [cluster.apps[a.app] for a in cluster.plan if a.app in cluster.apps]
        primaries = {a.app: (a.primary_node, a.primary_variant) for a in cluster.plan}
        inst = build_instance(
            specs,
            controller.planning_nodes(include_dead=True),
            controller.families,
            controller.params,
            primaries,
        )
        options = {
            "policy": config.policy,
            "method": "greedy",
            "progressive": config.progressive,
            "time_limit_s": config.plan_time_limit_s,
        }
        # First service first: the recovery program alone takes well under a millisecond...
        first: ReplanResult = replan(inst, cluster.plan, dead, protect=False, **options)
    except Exception as exc:  # the planner failed: leave the apps recovering, say why
        log.exception("re-planning after the failure of %s failed", dead)
        for app in cold:
            controller.programs.pop(app, None)
            controller.events.emit(EventKind.APP_LOST, app=app, reason=f"re-planning failed: {exc}")
        return
    chains: dict[str, list[Action]] = {}
    for action in first.actions:
        if action.kind is ActionKind.SWITCH and action.reason in ("warm backup", SHARED_REASON):
            continue  # done at detection time
        chains.setdefault(action.app, []).append(action)
    for app in cold:
        if app not in chains:
            controller.programs.pop(app, None)
    for app, steps in chains.items():
        controller.pinned[app] = {Replica(a.node, a.variant) for a in steps if a.node and a.variant}
        controller.programs[app] = controller.spawn(_run_chain(controller, app, steps))
    # ...then new backups, planned in a worker thread while the loads run. The reconcile loop
    # loads new warm backups once each app's program is done, and unloads what moved.
    # The recovery program above is the same whatever the method; protection is worth the
    # configured (exact) planner: after a failure the survivors are tight, and greedy best effort
    # protects far fewer apps there than CP-SAT does (within its time limit, off the event loop).
    controller.reprotecting += 1  # settling waits: a climb planned now would be overwritten
    try:
        full: ReplanResult = await asyncio.to_thread(
            replan, inst, cluster.plan, dead, **{**options, "method": config.method}
        )
    except Exception:
        log.exception("re-protection after the failure of %s failed; apps stay unprotected", dead)
        full = first
    finally:
        controller.reprotecting -= 1
    cluster.set_plans(_new_plan(full))
    controller.events.emit(
        EventKind.PLAN_CHANGED,
        reason=f"failure of {', '.join(dead)}",
        lost=list(full.lost),
        moved=list(full.moved),
        protected=full.protection.ok,
    )
    controller.wake()


def _new_plan(result: ReplanResult) -> Plan:
    if result.protection.plan is not None:
        return result.protection.plan
    return Plan(  # no protection possible: every app where it runs, unprotected
        tuple(Assignment(a.name, a.primary_node or "", a.primary_variant, None) for a in result.instance.apps)
    )


async def _run_chain(controller: Controller, app: str, steps: Sequence[Action]) -> None:
    switches = [a for a in steps if a.kind is ActionKind.SWITCH]
    final = switches[-1].variant if switches else None
    failed_loads: set[tuple[str | None, str | None]] = set()
    step_no = 0
    try:
        for action in steps:
            replica = Replica(action.node or "", action.variant or "")
            if action.kind is ActionKind.LOAD:
                if not await controller.load(replica, app, action.reason):
                    failed_loads.add((action.node, action.variant))
            elif action.kind is ActionKind.SWITCH:
                if (action.node, action.variant) in failed_loads:
                    continue
                step_no += 1
                stone = action.variant != final
                state = AppState.STEPPING if stone else AppState.FAILED_OVER
                controller.switch(app, replica, state, action.reason, stone=stone)
                if len(switches) > 1:
                    controller.events.emit(
                        EventKind.PROGRESSIVE_STEP,
                        app=app,
                        step=step_no,
                        node=replica.node,
                        variant=replica.variant,
                        stone=stone,
                    )
            elif action.kind is ActionKind.UNLOAD:
                await asyncio.sleep(controller.config.unload_grace_ms / 1000)
                shared = {Replica(s.node, s.variant) for s in controller.cluster.plan.shared}
                if replica not in shared:  # a stone that is also a shared fallback serves others
                    await controller.unload(replica, action.reason)
            elif action.kind is ActionKind.LOST:
                controller.cluster.set_serving(app, Serving(AppState.UNAVAILABLE))
                controller.events.emit(EventKind.APP_LOST, app=app, reason=action.reason)
                controller.publish_routes()
        serving = controller.cluster.serving.get(app)
        if serving is not None and serving.state is AppState.RECOVERING:
            controller.cluster.set_serving(app, Serving(AppState.UNAVAILABLE))
            controller.events.emit(EventKind.APP_LOST, app=app, reason="every recovery load failed")
            controller.publish_routes()
    finally:
        if controller.programs.get(app) is asyncio.current_task():
            controller.programs.pop(app, None)
            controller.pinned.pop(app, None)
        controller.wake()
