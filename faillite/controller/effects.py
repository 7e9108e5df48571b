"""The effect vocabulary: what the policy asks for, each effect with the reason it was asked.

Policies (``faillite.controller.policy``) return lists of these; ``reduce.apply`` records
each one's part in ``ControlState`` (the only code that mutates it), and the runner (the
controller, or the simulator) carries out the I/O part, in list order:

========================  ==========================================  ===========================
effect                    state part (``reduce.apply``)                I/O part (runner)
========================  ==========================================  ===========================
``Load``                  the replica is loading on its node           agent load (see below)
``Unload``                the replica is no longer loaded              agent unload, then
                                                                       ``policy.unloaded``
``LoadDone``              loading ends; loaded, or retry_after set      -
``SetServing``            serving[app] (transition checked)            persist
``SetNodeState``          node state (transition checked)              persist
``PutNode`` / ``PutApp``  registry / app specs                          persist
``RemoveApp``             the app, its serving, its plan entries       persist
``SetPlan``               plan (and home plan)                          persist
``SetAgent``              what an agent reports (None: gone)            -
``SetUndesired``          unneeded loaded replicas, since when          -
``SetFailure``            failed_at[app] (None: recovered)              -
``StartRecovery``         cold apps' programs, planning                 replan, then
                                                                       ``policy.recovery_programs``
``StartProgram``          a program with its steps, its pinned set      run ``policy.program_step``
``UpdateProgram``         a program's progress                          -
``EndProgram``            the program (if that run) and pinned go       -
``CancelProgram``         the program and pinned go                     stop its task
``Wait``                  -                                             sleep, then ``program_step``
``Reprotecting``          reprotecting += delta                         -
``SetClimb`` etc.         climbing / climb_blocked / settled            -
``SetFailbackDue``        failback_due                                  -
``Emit``                  -                                             event log (+ the clock)
``PublishRoutes``         -                                             push the route table
``Wake``                  -                                             run reconcile soon
========================  ==========================================  ===========================

A ``Load`` returned by ``program_step`` is awaited by the program: its outcome goes to
``policy.load_finished`` and then back into ``program_step(..., loaded=ok)``. A ``Load``
from ``policy.reconcile`` runs in the background and reports to ``load_finished`` only.

``Emit`` fields are exactly the controller's event fields (faillite.bench.phases reads them);
the runner adds the time (``mono``) from its clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from faillite.controller.decide import Load, Replica, SetServing, Unload
from faillite.controller.model import AgentView, NodeRecord, Program
from faillite.controller.planning import AppSpec
from faillite.controller.states import NodeState
from faillite.placement import Action, Assignment, Plan

__all__ = [
    "CancelProgram",
    "Effect",
    "Emit",
    "EndProgram",
    "EventKind",
    "Load",
    "LoadDone",
    "PublishRoutes",
    "PutApp",
    "PutNode",
    "RemoveApp",
    "Reprotecting",
    "SetAgent",
    "SetClimb",
    "SetClimbBlocked",
    "SetFailbackDue",
    "SetFailure",
    "SetNodeState",
    "SetPlan",
    "SetServing",
    "SetSettled",
    "SetUndesired",
    "StartProgram",
    "StartRecovery",
    "Unload",
    "UpdateProgram",
    "Wait",
    "Wake",
]


class EventKind(StrEnum):
    NODE_REGISTERED = "node_registered"
    NODE_ADOPTED = "node_adopted"  # re-registered after a controller restart, nothing reloaded
    FAILURE_SUSPECTED = "failure_suspected"
    NODE_DEAD = "node_dead"
    NODE_PAUSED = "node_paused"  # an agent paused past its fence promise and was confirmed alive
    NODE_REJOINED = "node_rejoined"
    APP_ADDED = "app_added"
    APP_REMOVED = "app_removed"
    PLAN_CHANGED = "plan_changed"
    LOAD_STARTED = "load_started"
    LOAD_FINISHED = "load_finished"
    LOAD_FAILED = "load_failed"
    UNLOADED = "unloaded"
    ROUTE_CHANGED = "route_changed"
    PROGRESSIVE_STEP = "progressive_step"
    APP_RECOVERED = "app_recovered"
    APP_LOST = "app_lost"
    # A failed-over app reached the variant it will keep until failback (no better one fits
    # while every app stays protected): app, node, variant, protected.
    APP_SETTLED = "app_settled"
    FAILBACK = "failback"


@dataclass(frozen=True)
class LoadDone:
    replica: Replica
    ok: bool
    retry_at: float | None = None  # refused: reconcile does not retry it before this time
    reason: str = "load finished"


@dataclass(frozen=True)
class SetNodeState:
    node: str
    state: NodeState
    reason: str


@dataclass(frozen=True)
class PutNode:
    record: NodeRecord
    reason: str


@dataclass(frozen=True)
class PutApp:
    spec: AppSpec
    reason: str = "app added"


@dataclass(frozen=True)
class RemoveApp:
    app: str
    reason: str = "app removed"


@dataclass(frozen=True)
class SetPlan:
    plan: Plan
    home: Plan | None = None  # also the home plan
    reason: str = ""


@dataclass(frozen=True)
class SetAgent:
    node: str
    view: AgentView | None  # None: the node's agent session is gone
    reason: str = ""


@dataclass(frozen=True)
class SetUndesired:
    since: Mapping[Replica, float]
    reason: str = "unneeded loaded replicas"


@dataclass(frozen=True)
class SetFailure:
    app: str
    failure: tuple[float, str] | None  # (time, node); None: the app answers again
    reason: str = ""


@dataclass(frozen=True)
class StartRecovery:
    dead: tuple[str, ...]  # every node now dead (the replan's failed set)
    cold: tuple[str, ...]  # apps whose recovery program the replan gives
    reason: str = ""


@dataclass(frozen=True)
class StartProgram:
    app: str
    steps: tuple[Action, ...]
    reason: str = "recovery program"


@dataclass(frozen=True)
class UpdateProgram:
    program: Program
    reason: str = ""


@dataclass(frozen=True)
class EndProgram:
    app: str
    run: int | None  # only that run's (None: whichever)
    reason: str = ""


@dataclass(frozen=True)
class CancelProgram:
    app: str
    reason: str


@dataclass(frozen=True)
class Wait:
    app: str  # the program that waits
    seconds: float
    reason: str


@dataclass(frozen=True)
class Reprotecting:
    delta: int  # +1: a re-protection replan started; -1: it ended
    reason: str = ""


@dataclass(frozen=True)
class SetClimb:
    app: str
    before: Assignment | None  # the assignment to go back to if refused; None: no climb runs
    reason: str = ""


@dataclass(frozen=True)
class SetClimbBlocked:
    app: str
    until: float
    reason: str = ""


@dataclass(frozen=True)
class SetSettled:
    app: str
    replica: Replica | None
    reason: str = ""


@dataclass(frozen=True)
class SetFailbackDue:
    due: bool
    reason: str = ""


@dataclass(frozen=True)
class Emit:
    kind: EventKind
    fields: Mapping[str, Any] = field(default_factory=dict)
    reason: str = "event"


@dataclass(frozen=True)
class PublishRoutes:
    reason: str = "serving changed"


@dataclass(frozen=True)
class Wake:
    reason: str = "state changed"


Effect = (
    Load
    | Unload
    | LoadDone
    | SetServing
    | SetNodeState
    | PutNode
    | PutApp
    | RemoveApp
    | SetPlan
    | SetAgent
    | SetUndesired
    | SetFailure
    | StartRecovery
    | StartProgram
    | UpdateProgram
    | EndProgram
    | CancelProgram
    | Wait
    | Reprotecting
    | SetClimb
    | SetClimbBlocked
    | SetSettled
    | SetFailbackDue
    | Emit
    | PublishRoutes
    | Wake
)
