"""An app's route (what clients send by) from the controller's state.

ADAPTER: the controller builds routes in ``faillite.controller.cluster.ClusterState._route``,
which needs its SQLite store; until that rule is a pure function over ``ControlState`` this
module states the same rule over it: the serving replica first (role stone / primary /
recovery), then the plan's warm backup, then the app's shared warm fallback, each only on a
live node and never twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from faillite.controller.decide import Replica
from faillite.controller.model import LIVE_STATES, ControlState, Serving
from faillite.controller.states import AppState
from faillite.placement import Assignment, Mode
from faillite.wire import Route, RouteTarget

__all__ = ["app_route"]


def app_route(
    state: ControlState,
    app: str,
    plan: Mapping[str, Assignment],
    accuracy: Mapping[tuple[str, str], float],
    variant_accuracy: Mapping[str, float],
) -> Route:
    serving = state.serving.get(app, Serving(AppState.PENDING))
    spec = state.apps.get(app)
    family = None if spec is None else spec.family

    def target(replica: Replica, role: str) -> RouteTarget | None:
        node = state.nodes.get(replica.node)
        if node is None or node.state not in LIVE_STATES:
            return None
        acc = accuracy.get((family or "", replica.variant), variant_accuracy.get(replica.variant))
        return RouteTarget(
            node=node.id, url=node.url, model=replica.variant, epoch=node.epoch, accuracy=acc, role=role
        )  # type: ignore[arg-type]

    targets: list[RouteTarget] = []
    if serving.replica is not None:
        role = "stone" if serving.stone else ("primary" if serving.state is AppState.PRIMARY else "recovery")
        t = target(serving.replica, role)
        if t is not None:
            targets.append(t)
    asg = plan.get(app)
    if asg is not None and asg.backup is not None and asg.backup.mode is Mode.WARM:
        backup = Replica(asg.backup.node, asg.backup.variant)
        if backup != serving.replica and (t := target(backup, "backup")) is not None:
            targets.append(t)
    shared = state.plan.shared_for(app)
    if shared is not None:
        fallback = Replica(shared.node, shared.variant)
        if fallback != serving.replica and (t := target(fallback, "backup")) is not None:
            targets.append(t)
    return Route(
        app=app,
        state=serving.state.value,
        targets=tuple(targets),
        slo_ms=None if spec is None else spec.slo_ms,
    )
