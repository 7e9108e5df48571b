"""What operators see: per-app and per-node views of the controller's state, computed on demand.

``GET /v1/apps``, ``GET /v1/status`` (the CLI's ``faillite status`` and the dashboard) and the
Prometheus collector (``metrics``) all read the cluster through these functions, so the table,
the page and the metrics never disagree.

Memory per node is split the way the planner reasons about it: **primaries** and **warm
backups** occupy memory at all times; **cold reservations** are what the node must keep free for
the cold backups it would load if the worst single other node failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faillite.controller.core import Controller
from faillite.controller.decide import Replica
from faillite.controller.states import AppState, NodeState
from faillite.placement import Mode, Plan, PlanningError

__all__ = [
    "MemorySplit",
    "accuracy_drop",
    "app_mode",
    "app_view",
    "count_by",
    "memory_split",
    "node_views",
    "status_view",
]

MemorySplit = dict[str, dict[str, int]]  # node -> {"primary", "warm", "cold"} bytes
UP_STATES = (NodeState.ALIVE, NodeState.SUSPECT)


def memory_split(
    plan: Plan, nodes: Iterable[str], size_of: Callable[[str, str], int], up: Iterable[str] | None = None
) -> MemorySplit:
    """Bytes per node: primaries, warm backups (and shared warm fallbacks), and the cold
    reservation of the worst failure.

    ``size_of(app, variant)`` gives a variant's memory. The cold reservation on node n is the
    largest, over every other node s (that is up, when ``up`` is given), of the cold backups on
    n of the apps whose primary is on s.
    """
    split: MemorySplit = {n: {"primary": 0, "warm": 0, "cold": 0} for n in nodes}
    cold: dict[tuple[str, str], int] = {}  # (backup node, failed primary node) -> bytes
    for a in plan:
        if a.primary_node in split:
            split[a.primary_node]["primary"] += size_of(a.app, a.primary_variant)
        if a.backup is None or a.backup.node not in split:
            continue
        size = size_of(a.app, a.backup.variant)
        if a.backup.mode is Mode.WARM:
            split[a.backup.node]["warm"] += size
        else:
            key = (a.backup.node, a.primary_node)
            cold[key] = cold.get(key, 0) + size
    fallbacks = {(s.node, s.variant): s.apps[0] for s in plan.shared}  # one model, however many apps
    for (node, variant), app in fallbacks.items():
        if node in split:
            split[node]["warm"] += size_of(app, variant)
    scenarios = None if up is None else set(up)
    for (node, failed), size in cold.items():
        if scenarios is None or failed in scenarios:
            split[node]["cold"] = max(split[node]["cold"], size)
    return split


def _size_of(controller: Controller) -> Callable[[str, str], int]:
    def size_of(app: str, variant: str) -> int:
        spec = controller.cluster.apps.get(app)
        family = controller.families.get(spec.family) if spec is not None else None
        if family is None:
            return 0
        try:
            return family.variant(variant).memory_bytes
        except PlanningError:  # a shared fallback answers with another family's variant
            for other in controller.families.values():
                if any(v.name == variant for v in other.variants):
                    return other.variant(variant).memory_bytes
            return 0

    return size_of


def app_mode(controller: Controller, name: str) -> str:
    """The app's state as operators read it: ``failed_over`` split into warm and cold."""
    serving = controller.cluster.serving.get(name)
    if serving is None:
        return AppState.PENDING.value
    if serving.state is not AppState.FAILED_OVER:
        return serving.state.value
    home = controller.cluster.home_plan.by_app().get(name)
    warm = (
        home is not None
        and home.backup is not None
        and home.backup.mode is Mode.WARM
        and serving.replica == Replica(home.backup.node, home.backup.variant)
    )
    return "failed_over_warm" if warm else "failed_over_cold"


def accuracy_drop(controller: Controller, name: str) -> float | None:
    """Home primary's accuracy minus the serving variant's (all of it while nothing serves)."""
    home = controller.cluster.home_plan.by_app().get(name) or controller.cluster.plan.by_app().get(name)
    if home is None:
        return None
    intended = controller.cluster.accuracy_of(name, home.primary_variant)
    if intended is None:
        return None
    serving = controller.cluster.serving.get(name)
    if serving is None or serving.replica is None:
        return round(intended, 6)
    now = controller.cluster.accuracy_of(name, serving.replica.variant)
    return None if now is None else round(max(intended - now, 0.0), 6)


def app_view(controller: Controller, name: str) -> dict[str, Any]:
    cluster = controller.cluster
    spec = cluster.apps[name]
    serving = cluster.serving.get(name)
    asg = cluster.plan.by_app().get(name)
    home = cluster.home_plan.by_app().get(name)
    replica = serving.replica if serving else None
    route = cluster.route(name)  # not route_table(): a read must not bump the version unpublished
    return {
        "spec": spec.model_dump(mode="json"),
        "state": serving.state.value if serving else "pending",
        "mode": app_mode(controller, name),
        "node": replica.node if replica else None,
        "variant": replica.variant if replica else None,
        "accuracy": cluster.accuracy_of(name, replica.variant) if replica else None,
        "accuracy_drop": accuracy_drop(controller, name),
        "home": None if home is None else {"node": home.primary_node, "variant": home.primary_variant},
        "stone": bool(serving and serving.stone),
        "protected": bool(asg and asg.backup),
        "backup": None
        if asg is None or asg.backup is None
        else {"node": asg.backup.node, "variant": asg.backup.variant, "mode": asg.backup.mode.value},
        "shared_fallback": None
        if (sf := cluster.plan.shared_for(name)) is None
        else {"node": sf.node, "variant": sf.variant, "family": sf.family},
        "route": [{"node": t.node, "role": t.role} for t in route.targets],
    }


def node_views(controller: Controller) -> list[dict[str, Any]]:
    cluster = controller.cluster
    up = [n.id for n in cluster.nodes.values() if n.state in UP_STATES]
    split = memory_split(cluster.plan, cluster.nodes, _size_of(controller), up)
    views = []
    for n in sorted(cluster.nodes.values(), key=lambda n: n.id):
        agent = controller.state.agents.get(n.id)
        views.append(
            {
                "id": n.id,
                "url": n.url,
                "pid": n.pid,
                "state": n.state.value,
                "epoch": n.epoch,
                "memory_bytes": n.memory_bytes,
                "cores": n.cores,
                "domain": n.domain,
                "loaded": sorted(agent.loaded) if agent else [],
                "used_bytes": agent.used_bytes if agent else 0,
                "planned": split[n.id],
            }
        )
    return views


def status_view(controller: Controller) -> dict[str, Any]:
    """``GET /v1/status``: nodes with their memory split, apps, the route version, the last event."""
    return {
        "nodes": node_views(controller),
        "apps": [{"name": n, **app_view(controller, n)} for n in sorted(controller.cluster.apps)],
        "route_version": controller.cluster.route_version,
        "last_event_id": controller.events.last_id(),
    }


def count_by(values: Iterable[str], keys: Iterable[str]) -> Mapping[str, int]:
    counts = dict.fromkeys(keys, 0)
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts
