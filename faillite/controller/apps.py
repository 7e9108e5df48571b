"""Adding and removing apps: validate, plan, and only then change the cluster.

A spec the cluster cannot run is refused with the reason (unknown family, SLO no variant
meets, no room anywhere) and nothing changes: planning runs on a copy, and the new plan is
committed (persisted) only when it is feasible.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faillite.controller.core import Controller
from faillite.controller.events import EventKind
from faillite.controller.planning import AppSpec, SpecError, build_instance, to_app
from faillite.controller.states import NodeState
from faillite.placement import Assignment, Plan, make_plan

__all__ = ["AppConflict", "PlanRefused", "add_apps", "remove_app"]


class AppConflict(ValueError):
    """An app of that name exists already."""


class PlanRefused(ValueError):
    """No feasible plan includes the new apps; ``reasons`` say which constraint fails where."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        super().__init__("; ".join(reasons) or "no feasible plan")
        self.reasons = reasons


async def add_apps(controller: Controller, specs: list[AppSpec]) -> dict[str, Any]:
    cluster = controller.cluster
    names = [s.name for s in specs]
    taken = sorted({n for n in names if n in cluster.apps or names.count(n) > 1})
    if taken:
        raise AppConflict(f"app {taken[0]!r} exists already (DELETE /v1/apps/{taken[0]} first)")
    nodes = controller.planning_nodes()
    if not nodes:
        raise SpecError("no live node has registered yet")
    for spec in specs:
        to_app(spec, controller.families, [n.id for n in nodes])  # the spec's own errors first
    current = cluster.plan.by_app()
    primaries = {app: (a.primary_node, a.primary_variant) for app, a in current.items()}
    keep = {app: a.backup for app, a in current.items() if a.backup is not None}
    inst = build_instance(
        [*cluster.apps.values(), *specs], nodes, controller.families, controller.params, primaries
    )
    opts = {
        "method": controller.config.method,
        "policy": controller.config.policy,
        "time_limit_s": controller.config.plan_time_limit_s,
    }
    # loaded shared fallbacks stay where they are when they still fit (policy faillite-shared)
    result = await asyncio.to_thread(make_plan, inst, keep=keep, keep_shared=cluster.plan.shared, **opts)
    if result.plan is None and keep:
        result = await asyncio.to_thread(make_plan, inst, **opts)
    if result.plan is None:
        raise PlanRefused(result.reasons)
    for spec in specs:
        cluster.put_app(spec)
    all_live = all(n.state is NodeState.ALIVE for n in cluster.nodes.values())
    home = result.plan if all_live else _merge(cluster.home_plan, result.plan, names)
    cluster.set_plans(result.plan, home)
    for spec in specs:
        controller.events.emit(EventKind.APP_ADDED, app=spec.name, family=spec.family)
    controller.events.emit(
        EventKind.PLAN_CHANGED, reason=f"added {', '.join(names)}", objective=result.objective
    )
    controller.publish_routes()
    controller.wake()
    return {"apps": names, "status": result.status.value, "objective": result.objective}


def _merge(home: Plan, new: Plan, names: list[str]) -> Plan:
    added: tuple[Assignment, ...] = tuple(a for a in new if a.app in names)
    # the home plan keeps its shared fallbacks (the new apps get theirs from the current plan)
    return Plan(tuple(a for a in home if a.app not in names) + added, home.shared)


def remove_app(controller: Controller, name: str) -> bool:
    if name not in controller.cluster.apps:
        return False
    task = controller.programs.pop(name, None)
    if task is not None:
        task.cancel()
    controller.pinned.pop(name, None)
    controller.cluster.delete_app(name)
    controller.events.emit(EventKind.APP_REMOVED, app=name)
    controller.publish_routes()
    controller.wake()
    return True
