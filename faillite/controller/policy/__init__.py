"""The controller's policy: pure decision functions, state in, effects out.

No I/O, no clock, no asyncio: every function takes the ``ControlState``
(``faillite.controller.model``) and, where time matters, ``now`` (seconds on the caller's
monotonic clock), and returns a list of effects (``faillite.controller.effects``), each with
its reason. The caller applies them in order with ``faillite.controller.reduce.apply`` and
carries out their I/O. The real controller and the simulator (``faillite.sim``) both run
these functions: one implementation of every decision.

Decision families (one module each):

- ``reconcile``: ``reconcile(state, now)`` (``decide`` on the state), then ``rejoined(state)``
  and ``failback(state)``; ``load_finished``, ``unloaded``.
- ``failover``: ``node_dead(state, node, failed_at)``; ``recovery_request(state, dead)``
  (``.first()`` / ``.full()`` replans), ``recovery_programs``, ``recovery_failed``, ``reprotected``.
- ``programs``: ``program_step(state, app, now, loaded=None)``.
- ``climb``: ``climb_prelude``, ``climb_request`` (``.solve()``), ``climb_adopt``, ``undo_refused``.
- ``apps``: ``add_request`` (``.solve()``), ``app_added``, ``app_removed``.
- ``nodes``: ``fail_first``, ``node_registered``, ``agent_status``, ``node_suspected``, ``node_heard``.
"""

from faillite.controller.policy.apps import (
    AddRequest,
    AppConflict,
    PlanRefused,
    add_request,
    app_added,
    app_removed,
)
from faillite.controller.policy.climb import (
    ClimbRequest,
    agents_view,
    climb_adopt,
    climb_prelude,
    climb_request,
    forget_settled,
    undo_refused,
)
from faillite.controller.policy.failover import (
    RecoveryRequest,
    new_plan,
    node_dead,
    recovery_failed,
    recovery_programs,
    recovery_request,
    reprotected,
)
from faillite.controller.policy.nodes import (
    agent_status,
    fail_first,
    node_heard,
    node_registered,
    node_suspected,
)
from faillite.controller.policy.programs import program_step
from faillite.controller.policy.reconcile import (
    failback,
    load_finished,
    load_started,
    reconcile,
    rejoined,
    unloaded,
)
from faillite.controller.policy.serving import shared_replica, switch

__all__ = [
    "AddRequest",
    "AppConflict",
    "ClimbRequest",
    "PlanRefused",
    "RecoveryRequest",
    "add_request",
    "agent_status",
    "agents_view",
    "app_added",
    "app_removed",
    "climb_adopt",
    "climb_prelude",
    "climb_request",
    "fail_first",
    "failback",
    "forget_settled",
    "load_finished",
    "load_started",
    "new_plan",
    "node_dead",
    "node_heard",
    "node_registered",
    "node_suspected",
    "program_step",
    "reconcile",
    "recovery_failed",
    "recovery_programs",
    "recovery_request",
    "rejoined",
    "reprotected",
    "shared_replica",
    "switch",
    "undo_refused",
    "unloaded",
]
