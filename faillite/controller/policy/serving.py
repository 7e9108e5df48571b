"""Moving an app's traffic: the switch every decision family shares, and shared fallbacks.

``switch`` says what a route change means: the app's new serving, the ``route_changed`` event,
``app_recovered`` (with ``recovery_ms`` on the caller's clock) if the app was down since a
failure, and a route push.
"""

from __future__ import annotations

from collections.abc import Collection

from faillite.controller.decide import Replica, SetServing
from faillite.controller.effects import Effect, Emit, EventKind, PublishRoutes, SetFailure
from faillite.controller.model import ControlState, Serving
from faillite.controller.states import AppState

__all__ = ["UNSET", "shared_replica", "switch"]

UNSET = object()  # "read it from the state" for switch's overrides


def switch(
    state: ControlState,
    app: str,
    replica: Replica,
    app_state: AppState,
    reason: str,
    *,
    now: float,
    stone: bool = False,
    before: Serving | object | None = UNSET,
    failure: tuple[float, str] | object | None = UNSET,
) -> list[Effect]:
    """Serve ``app`` from ``replica``. ``before`` / ``failure`` override what the state says
    (a policy that changed them earlier in the same list of effects passes its own view)."""
    prior: Serving | None = state.serving.get(app) if before is UNSET else before  # type: ignore[assignment]
    if prior is not None and prior.replica == replica and prior.state is app_state and prior.stone == stone:
        return []
    effects: list[Effect] = [
        SetServing(app, replica, app_state, reason, stone),
        Emit(
            EventKind.ROUTE_CHANGED,
            {
                "app": app,
                "node": replica.node,
                "variant": replica.variant,
                "state": app_state.value,
                "reason": reason,
                "previous": None if prior is None or prior.replica is None else prior.replica.node,
            },
        ),
    ]
    down: tuple[float, str] | None = state.failed_at.get(app) if failure is UNSET else failure  # type: ignore[assignment]
    if down is not None:
        at, node = down
        effects.append(SetFailure(app, None, "answers again"))
        effects.append(
            Emit(
                EventKind.APP_RECOVERED,
                {
                    "app": app,
                    "failed_node": node,
                    "node": replica.node,
                    "variant": replica.variant,
                    "recovery_ms": round((now - at) * 1000, 2),
                    "state": app_state.value,
                },
            )
        )
    effects.append(PublishRoutes(f"{app}: {reason}"))
    return effects


def shared_replica(state: ControlState, app: str, live: Collection[str]) -> Replica | None:
    """``app``'s shared warm fallback when it is on a live node and loaded there (ready to answer)."""
    sf = state.plan.shared_for(app)
    if sf is None or sf.node not in live:
        return None
    agent = state.agents.get(sf.node)
    if agent is None or sf.variant not in agent.loaded:
        return None
    return Replica(sf.node, sf.variant)
