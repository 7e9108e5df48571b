"""Adding and removing apps: validate, plan, and only then change the state.

A spec the cluster cannot run is refused with the reason (unknown family, SLO no variant
meets, no room anywhere) and nothing changes::

    request = add_request(state, specs)      # raises AppConflict / SpecError
    result = request.solve()                 # make_plan (the controller: in a worker thread)
    apply(app_added(state, request, result)) # raises PlanRefused when result has no plan
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faillite.controller.effects import (
    CancelProgram,
    Effect,
    Emit,
    EventKind,
    PublishRoutes,
    PutApp,
    RemoveApp,
    SetPlan,
    Wake,
)
from faillite.controller.model import ControlState, planning_nodes
from faillite.controller.planning import AppSpec, SpecError, build_instance, to_app
from faillite.controller.states import NodeState
from faillite.placement import Assignment, Backup, Instance, Plan, PlanResult, SharedFallback, make_plan

__all__ = ["AddRequest", "AppConflict", "PlanRefused", "add_request", "app_added", "app_removed"]


class AppConflict(ValueError):
    """An app of that name exists already."""


class PlanRefused(ValueError):
    """No feasible plan includes the new apps; ``reasons`` say which constraint fails where."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        super().__init__("; ".join(reasons) or "no feasible plan")
        self.reasons = reasons


@dataclass(frozen=True)
class AddRequest:
    specs: tuple[AppSpec, ...]
    instance: Instance
    keep: Mapping[str, Backup]  # existing backups stay where they are when they still fit
    keep_shared: tuple[SharedFallback, ...]  # so do loaded shared fallbacks (faillite-shared)
    options: Mapping[str, Any]

    def solve(self) -> PlanResult:
        result = make_plan(self.instance, keep=self.keep, keep_shared=self.keep_shared, **self.options)
        if result.plan is None and self.keep:
            result = make_plan(self.instance, **self.options)
        return result


def add_request(state: ControlState, specs: Sequence[AppSpec]) -> AddRequest:
    names = [s.name for s in specs]
    counts = Counter(names)  # linear: thousands of apps may be added at once
    taken = sorted({n for n in names if n in state.apps or counts[n] > 1})
    if taken:
        raise AppConflict(f"app {taken[0]!r} exists already (DELETE /v1/apps/{taken[0]} first)")
    nodes = planning_nodes(state)
    if not nodes:
        raise SpecError("no live node has registered yet")
    for spec in specs:
        to_app(spec, state.families, [n.id for n in nodes])  # the spec's own errors first
    current = state.plan.by_app()
    primaries = {app: (a.primary_node, a.primary_variant) for app, a in current.items()}
    keep = {app: a.backup for app, a in current.items() if a.backup is not None}
    inst = build_instance([*state.apps.values(), *specs], nodes, state.families, state.params, primaries)
    options = {
        "method": state.config.method,
        "policy": state.config.policy,
        "time_limit_s": state.config.plan_time_limit_s,
    }
    return AddRequest(tuple(specs), inst, keep, state.plan.shared, options)


def app_added(state: ControlState, request: AddRequest, result: PlanResult) -> list[Effect]:
    if result.plan is None:
        raise PlanRefused(result.reasons)
    names = [s.name for s in request.specs]
    all_live = all(n.state is NodeState.ALIVE for n in state.nodes.values())
    home = result.plan if all_live else _merge(state.home_plan, result.plan, names)
    effects: list[Effect] = [PutApp(spec) for spec in request.specs]
    effects.append(SetPlan(result.plan, home, reason=f"added {', '.join(names)}"))
    effects += [Emit(EventKind.APP_ADDED, {"app": s.name, "family": s.family}) for s in request.specs]
    reason = f"added {', '.join(names)}"
    effects.append(Emit(EventKind.PLAN_CHANGED, {"reason": reason, "objective": result.objective}))
    return [*effects, PublishRoutes(reason), Wake(reason)]


def _merge(home: Plan, new: Plan, names: list[str]) -> Plan:
    added: tuple[Assignment, ...] = tuple(a for a in new if a.app in names)
    # the home plan keeps its shared fallbacks (the new apps get theirs from the current plan)
    return Plan(tuple(a for a in home if a.app not in names) + added, home.shared)


def app_removed(state: ControlState, name: str) -> list[Effect]:
    """Empty when there is no such app."""
    if name not in state.apps:
        return []
    return [
        CancelProgram(name, "app removed"),
        RemoveApp(name),
        Emit(EventKind.APP_REMOVED, {"app": name}),
        PublishRoutes(f"{name} removed"),
        Wake(f"{name} removed"),
    ]
