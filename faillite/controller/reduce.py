"""``apply(state, effect)``: the only code that mutates ``ControlState``.

Pure and in memory: it records the state part of an effect (a ``Load`` marks the replica
loading, a ``SetServing`` moves the app, after checking the transition table of
``faillite.controller.states``). The I/O part (agent calls, the event log, route pushes,
persistence) is the runner's. Effects with no state part (``Emit``, ``PublishRoutes``,
``Wake``, ``Wait``, ``StartRecovery``'s replan) change only what they say below.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from faillite.controller.decide import Load, Replica, SetServing, Unload
from faillite.controller.effects import (
    CancelProgram,
    Effect,
    EndProgram,
    LoadDone,
    PutApp,
    PutNode,
    RemoveApp,
    Reprotecting,
    SetAgent,
    SetClimb,
    SetClimbBlocked,
    SetFailbackDue,
    SetFailure,
    SetNodeState,
    SetPlan,
    SetSettled,
    SetUndesired,
    StartProgram,
    StartRecovery,
    UpdateProgram,
)
from faillite.controller.model import ControlState, Program, Serving
from faillite.controller.states import InvalidTransition, check
from faillite.placement import Plan, SharedFallback

__all__ = ["apply", "apply_all", "without_app"]


def apply_all(state: ControlState, effects: Iterable[Effect]) -> None:
    for effect in effects:
        apply(state, effect)


def apply(state: ControlState, effect: Effect) -> None:
    match effect:
        case Load(replica=r):
            state.loading[r.node] = state.loading_on(r.node) | {r.variant}
        case Unload(replica=r):
            state.undesired_since.pop(r, None)
            agent = state.agents.get(r.node)
            if agent is not None:
                state.agents[r.node] = replace(agent, loaded=agent.loaded - {r.variant})
        case LoadDone(replica=r, ok=ok, retry_at=retry_at):
            if r.node in state.loading:
                state.loading[r.node] = state.loading[r.node] - {r.variant}
            if ok:
                agent = state.agents.get(r.node)
                if agent is not None:
                    state.agents[r.node] = replace(agent, loaded=agent.loaded | {r.variant})
                state.retry_after.pop(r, None)
            elif retry_at is not None:
                state.retry_after[r] = retry_at
        case SetServing(app=app, replica=replica, state=app_state, stone=stone):
            current = state.serving.get(app)
            if current is not None and current.state is not app_state:
                check(current.state, app_state)
            state.serving[app] = Serving(app_state, replica, stone)
        case SetNodeState(node=node, state=node_state):
            current = state.nodes[node]
            if current.state is not node_state:
                check(current.state, node_state)
            state.nodes[node] = replace(current, state=node_state)
        case PutNode(record=record):
            known = state.nodes.get(record.id)
            if known is not None and record.epoch < known.epoch:
                raise InvalidTransition(
                    f"node {record.id}: epoch {known.epoch} cannot go back to {record.epoch}"
                )
            if known is not None and known.state is not record.state:
                check(known.state, record.state)
            state.nodes[record.id] = record
        case PutApp(spec=spec):
            state.apps[spec.name] = spec
        case RemoveApp(app=app):
            state.apps.pop(app, None)
            state.serving.pop(app, None)
            state.programs.pop(app, None)
            state.pinned.pop(app, None)
            state.plan = without_app(state.plan, app)
            state.home_plan = without_app(state.home_plan, app)
        case SetPlan(plan=plan, home=home):
            state.plan = plan
            if home is not None:
                state.home_plan = home
        case SetAgent(node=node, view=view):
            if view is None:
                state.agents.pop(node, None)
                state.loading.pop(node, None)
            else:
                state.agents[node] = view
        case SetUndesired(since=since):
            state.undesired_since = dict(since)
        case SetFailure(app=app, failure=failure):
            if failure is None:
                state.failed_at.pop(app, None)
            else:
                state.failed_at.setdefault(app, failure)
        case StartRecovery(cold=cold):
            for app in cold:
                state.runs += 1
                state.programs[app] = Program(app, state.runs)
        case StartProgram(app=app, steps=steps):
            state.runs += 1
            state.programs[app] = Program(app, state.runs, steps, planning=False)
            state.pinned[app] = frozenset(Replica(a.node, a.variant) for a in steps if a.node and a.variant)
        case UpdateProgram(program=program):
            current = state.programs.get(program.app)
            if current is not None and current.run == program.run:
                state.programs[program.app] = program
        case EndProgram(app=app, run=run):
            current = state.programs.get(app)
            if current is not None and (run is None or current.run == run):
                state.programs.pop(app)
                state.pinned.pop(app, None)
        case CancelProgram(app=app):
            state.programs.pop(app, None)
            state.pinned.pop(app, None)
        case Reprotecting(delta=delta):
            state.reprotecting += delta
        case SetClimb(app=app, before=before):
            if before is None:
                state.climbing.pop(app, None)
            else:
                state.climbing[app] = before
        case SetClimbBlocked(app=app, until=until):
            state.climb_blocked[app] = until
        case SetSettled(app=app, replica=replica):
            if replica is None:
                state.settled.pop(app, None)
            else:
                state.settled[app] = replica
        case SetFailbackDue(due=due):
            state.failback_due = due
        case _:
            pass  # Emit, PublishRoutes, Wake, Wait: the runner's alone


def without_app(plan: Plan, app: str) -> Plan:
    """``plan`` less ``app``: its assignment, and its place in shared fallbacks (a fallback left
    serving nobody goes)."""
    shared = tuple(
        SharedFallback(s.node, s.family, s.variant, apps)
        for s in plan.shared
        if (apps := tuple(a for a in s.apps if a != app))
    )
    return Plan(tuple(a for a in plan if a.app != app), shared)
