"""A node declared dead: the immediate switches, then the recovery programs and re-protection.

1. ``node_dead(state, node, failed_at)``: at once, apps with a warm backup on a live node
   switch to it; the others with a shared warm fallback (policy faillite-shared) on a live
   node, loaded, switch to it (STEPPING) while their own backup loads; the rest go
   RECOVERING. Programs that counted on the node are cancelled. ``StartRecovery`` asks the
   runner for the replan.
2. The runner calls ``recovery_request(state, dead).first()`` (greedy, recovery only, well
   under a millisecond) and feeds it to ``recovery_programs``: one program per app, started
   in the planner's order (most critical first). Then ``.full()`` (the configured method,
   with protection; the controller runs it in a worker thread) goes to ``reprotected``.
   If the first replan raises, ``recovery_failed`` gives the apps up (``app_lost``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faillite.controller.decide import Replica, SetServing
from faillite.controller.effects import (
    CancelProgram,
    Effect,
    Emit,
    EndProgram,
    EventKind,
    PublishRoutes,
    Reprotecting,
    SetAgent,
    SetFailure,
    SetNodeState,
    SetPlan,
    StartProgram,
    StartRecovery,
    Wake,
)
from faillite.controller.model import ControlState, Serving, live_nodes, planning_nodes
from faillite.controller.planning import build_instance
from faillite.controller.policy.serving import shared_replica, switch
from faillite.controller.states import AppState, NodeState
from faillite.placement import (
    SHARED_REASON,
    Action,
    ActionKind,
    Assignment,
    Instance,
    Mode,
    Plan,
    ReplanResult,
    replan,
)

__all__ = [
    "RecoveryRequest",
    "new_plan",
    "node_dead",
    "recovery_failed",
    "recovery_programs",
    "recovery_request",
    "reprotected",
]


def node_dead(
    state: ControlState,
    node: str,
    failed_at: float,
    *,
    now: float | None = None,
    reason: str = "connection closed",
    silent_ms: float = 0.0,
) -> list[Effect]:
    """``node`` is declared dead; it failed at ``failed_at`` (``now`` less the silence).
    Empty when the node is unknown or dead already."""
    record = state.nodes.get(node)
    if record is None or record.state is NodeState.DEAD:
        return []
    now = failed_at + silent_ms / 1000 if now is None else now
    effects: list[Effect] = [
        SetNodeState(node, NodeState.DEAD, reason),
        SetAgent(node, None, "declared dead"),
        Emit(
            EventKind.NODE_DEAD,
            {"node": node, "epoch": record.epoch, "reason": reason, "detection_ms": round(silent_ms, 1)},
        ),
    ]
    for app in list(state.programs):  # programs that counted on that node
        serving = state.serving.get(app)  # e.g. on a shared fallback there, while its backup loads
        on_node = serving is not None and serving.replica is not None and serving.replica.node == node
        if on_node or any(r.node == node for r in state.pinned.get(app, ())):
            effects.append(CancelProgram(app, f"its program counted on {node}"))
    plan = state.plan.by_app()
    served_here = {a for a, s in state.serving.items() if s.replica is not None and s.replica.node == node}
    unserved = {a for a in plan if state.serving.get(a) is None or state.serving[a].replica is None}
    planned_here = {a.app for a in state.plan if a.primary_node == node}  # e.g. a program's target
    if not served_here | planned_here:
        return [*effects, PublishRoutes(f"{node} dead")]
    live = set(live_nodes(state)) - {node}
    cold = sorted(planned_here - served_here)  # served elsewhere or not yet: re-planned, not interrupted
    for app in sorted(served_here):
        failure = state.failed_at.get(app, (failed_at, node))
        effects.append(SetFailure(app, failure, f"{node} dead"))
        backup = plan[app].backup if app in plan else None
        if backup is not None and backup.mode is Mode.WARM and backup.node in live:
            effects += switch(
                state,
                app,
                Replica(backup.node, backup.variant),
                AppState.FAILED_OVER,
                "warm backup",
                now=now,
                failure=failure,
            )
        else:
            cold.append(app)
            effects.append(SetServing(app, None, AppState.RECOVERING, f"{node} dead, no warm backup"))
            fallback = shared_replica(state, app, live)
            if fallback is not None:  # answers now; the app's own backup loads meanwhile
                effects += switch(
                    state,
                    app,
                    fallback,
                    AppState.STEPPING,
                    SHARED_REASON,
                    now=now,
                    stone=True,
                    before=Serving(AppState.RECOVERING),
                    failure=failure,
                )
    for app in sorted(planned_here & unserved):
        effects.append(SetServing(app, None, AppState.RECOVERING, f"its planned node {node} is dead"))
    effects.append(PublishRoutes(f"{node} dead"))
    dead = tuple(sorted({n.id for n in state.nodes.values() if n.state is NodeState.DEAD} | {node}))
    effects.append(StartRecovery(dead, tuple(cold), f"failure of {', '.join(dead)}"))
    return effects


@dataclass(frozen=True)
class RecoveryRequest:
    """The replans after a failure: ``first()`` the recovery program, ``full()`` with protection."""

    instance: Instance
    plan: Plan
    dead: tuple[str, ...]
    options: dict[str, Any]
    method: str  # the configured method, for ``full``

    def first(self) -> ReplanResult:
        return replan(self.instance, self.plan, self.dead, protect=False, **self.options)

    def full(self) -> ReplanResult:
        return replan(self.instance, self.plan, self.dead, **{**self.options, "method": self.method})


def recovery_request(state: ControlState, dead: Sequence[str]) -> RecoveryRequest:
    specs = [state.apps[a.app] for a in state.plan if a.app in state.apps]
    primaries = {a.app: (a.primary_node, a.primary_variant) for a in state.plan}
    inst = build_instance(
        specs, planning_nodes(state, include_dead=True), state.families, state.params, primaries
    )
    config = state.config
    options = {
        "policy": config.policy,
        "method": "greedy",
        "progressive": config.progressive,
        "time_limit_s": config.plan_time_limit_s,
    }
    return RecoveryRequest(inst, state.plan, tuple(dead), options, config.method)


def recovery_programs(state: ControlState, first: ReplanResult, cold: Sequence[str]) -> list[Effect]:
    """One program per app of the recovery replan (the warm and shared switches were done at
    detection); cold apps it has nothing for end theirs. Re-protection starts."""
    chains: dict[str, list[Action]] = {}
    for action in first.actions:
        if action.kind is ActionKind.SWITCH and action.reason in ("warm backup", SHARED_REASON):
            continue  # done at detection time
        chains.setdefault(action.app, []).append(action)
    effects: list[Effect] = [EndProgram(a, None, "nothing to recover") for a in cold if a not in chains]
    effects += [StartProgram(app, tuple(steps)) for app, steps in chains.items()]
    effects.append(Reprotecting(+1, "planning new backups (settling waits)"))
    return effects


def recovery_failed(state: ControlState, cold: Sequence[str], error: str) -> list[Effect]:
    """The recovery replan raised: the apps stay recovering, and the log says why."""
    effects: list[Effect] = []
    for app in cold:
        effects.append(EndProgram(app, None, "re-planning failed"))
        effects.append(Emit(EventKind.APP_LOST, {"app": app, "reason": f"re-planning failed: {error}"}))
    return effects


def reprotected(state: ControlState, result: ReplanResult, dead: Sequence[str]) -> list[Effect]:
    """The re-protection replan ended (the runner passes the first result if it failed)."""
    return [
        Reprotecting(-1, "new backups planned"),
        SetPlan(new_plan(result), reason=f"failure of {', '.join(dead)}"),
        Emit(
            EventKind.PLAN_CHANGED,
            {
                "reason": f"failure of {', '.join(dead)}",
                "lost": list(result.lost),
                "moved": list(result.moved),
                "protected": result.protection.ok,
            },
        ),
        Wake("new plan"),
    ]


def new_plan(result: ReplanResult) -> Plan:
    if result.protection.plan is not None:
        return result.protection.plan
    return Plan(  # no protection possible: every app where it runs, unprotected
        tuple(Assignment(a.name, a.primary_node or "", a.primary_variant, None) for a in result.instance.apps)
    )
