"""Interpreting a failover program, one step per call.

A program is the list of placement actions the recovery replan gave one app (load the fast
stepping stone, switch to it, load the planned variant, switch, unload the stone; or LOST).
The runner loops::

    effects = program_step(state, app, now)            # first call, then after each outcome
    apply them in order; carry out their I/O:
      Load  -> await the agent; apply load_finished(...); then program_step(..., loaded=ok)
      Wait  -> sleep ``seconds``; then program_step(state, app, now)
      Unload -> await the agent (then ``unloaded``); keep looping
    stop when the effects hold an ``EndProgram`` for the app, or are empty (cancelled).

The interpretation: a refused load makes its switch be skipped; a switch to anything but the
final variant is a stepping stone (STEPPING, ``progressive_step`` events when several); an
unload waits the unload grace first and spares a shared fallback; LOST gives the app up.
At the end an app still RECOVERING (every load refused) is given up too.
"""

from __future__ import annotations

from dataclasses import replace

from faillite.controller.decide import Load, Replica, SetServing, Unload
from faillite.controller.effects import (
    Effect,
    Emit,
    EndProgram,
    EventKind,
    PublishRoutes,
    UpdateProgram,
    Wait,
    Wake,
)
from faillite.controller.model import ControlState
from faillite.controller.policy.reconcile import load_started
from faillite.controller.policy.serving import switch
from faillite.controller.states import AppState
from faillite.placement import ActionKind

__all__ = ["program_step"]


def program_step(state: ControlState, app: str, now: float, *, loaded: bool | None = None) -> list[Effect]:
    """The effects of ``app``'s program's next step (``loaded``: the outcome of the load it
    awaited). Empty when the app has no running program (cancelled, or still planning)."""
    p = state.programs.get(app)
    if p is None or p.planning:
        return []
    if p.awaiting:
        step = p.steps[p.position]
        failed = p.failed if loaded else p.failed | {(step.node, step.variant)}
        p = replace(p, position=p.position + 1, failed=failed, awaiting=False)
    if p.position >= len(p.steps):
        effects: list[Effect] = []
        serving = state.serving.get(app)
        if serving is not None and serving.state is AppState.RECOVERING:
            why = "every recovery load failed"
            effects += _lost(app, why)
        return [*effects, EndProgram(app, p.run, "program done"), Wake("program done")]
    step = p.steps[p.position]
    replica = Replica(step.node or "", step.variant or "")
    if step.kind is ActionKind.LOAD:
        load = Load(replica, app, step.reason)
        return [UpdateProgram(replace(p, awaiting=True)), *load_started(replica, app, step.reason), load]
    if step.kind is ActionKind.SWITCH:
        after = replace(p, position=p.position + 1)
        if (step.node, step.variant) in p.failed:
            return [UpdateProgram(after, "its load was refused: skip the switch")]
        switches = [a for a in p.steps if a.kind is ActionKind.SWITCH]
        stone = step.variant != switches[-1].variant
        app_state = AppState.STEPPING if stone else AppState.FAILED_OVER
        after = replace(after, switched=p.switched + 1)
        effects = [UpdateProgram(after)]
        effects += switch(state, app, replica, app_state, step.reason, now=now, stone=stone)
        if len(switches) > 1:
            fields = {
                "app": app,
                "step": after.switched,
                "node": replica.node,
                "variant": replica.variant,
                "stone": stone,
            }
            effects.append(Emit(EventKind.PROGRESSIVE_STEP, fields))
        return effects
    if step.kind is ActionKind.UNLOAD:
        if not p.waited:  # clients holding the old route see the new one first
            grace = state.config.unload_grace_s
            return [UpdateProgram(replace(p, waited=True)), Wait(app, grace, "unload grace")]
        effects = [UpdateProgram(replace(p, position=p.position + 1, waited=False))]
        shared = {Replica(s.node, s.variant) for s in state.plan.shared}
        if replica not in shared:  # a stone that is also a shared fallback serves others
            effects.append(Unload(replica, step.reason))
        return effects
    # LOST
    return [UpdateProgram(replace(p, position=p.position + 1)), *_lost(app, step.reason)]


def _lost(app: str, reason: str) -> list[Effect]:
    return [
        SetServing(app, None, AppState.UNAVAILABLE, reason),
        Emit(EventKind.APP_LOST, {"app": app, "reason": reason}),
        PublishRoutes(f"{app} lost"),
    ]
