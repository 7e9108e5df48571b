"""The controller's picture of the cluster: what it knows, persisted in the state store.

Only the controller's event loop mutates it; every mutation goes through a method here that
also writes the store, so memory and disk never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from faillite.controller.decide import Replica
from faillite.controller.planning import AppSpec, plan_from_json, plan_to_json, shared_to_json
from faillite.controller.states import AppState, NodeState, check
from faillite.controller.store import StateStore
from faillite.placement import Mode, Plan, SharedFallback
from faillite.wire import Route, RouteTable, RouteTarget

__all__ = ["ClusterState", "NodeRecord", "Serving"]


@dataclass(frozen=True)
class NodeRecord:
    id: str
    url: str
    memory_bytes: int
    cores: float
    domain: str | None
    pid: int | None
    epoch: int
    state: NodeState


@dataclass(frozen=True)
class Serving:
    """Where an app is served from now, and in which state it is."""

    state: AppState
    replica: Replica | None = None
    stone: bool = False  # the replica is a progressive failover's stepping stone

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "replica": None if self.replica is None else asdict(self.replica),
            "stone": self.stone,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Serving:
        replica = doc.get("replica")
        return cls(
            AppState(doc["state"]), None if replica is None else Replica(**replica), doc.get("stone", False)
        )


class ClusterState:
    def __init__(self, store: StateStore, accuracies: Mapping[tuple[str, str], float]) -> None:
        self.store = store
        self.accuracies = accuracies  # (family, variant) -> accuracy, for routes and reports
        # variant -> accuracy: a shared fallback answers an app with another family's variant
        self.variant_accuracy = {variant: acc for (_, variant), acc in accuracies.items()}
        self.apps: dict[str, AppSpec] = {k: AppSpec.model_validate(v) for k, v in store.rows("apps").items()}
        self.nodes: dict[str, NodeRecord] = {
            k: NodeRecord(**{**v, "state": NodeState(v["state"])}) for k, v in store.rows("nodes").items()
        }
        self.serving: dict[str, Serving] = {k: Serving.from_json(v) for k, v in store.rows("serving").items()}
        plan = store.get("plan")
        home = store.get("home_plan")
        self.plan: Plan = plan_from_json(plan, store.get("plan_shared")) if plan else Plan(())
        self.home_plan: Plan = plan_from_json(home, store.get("home_plan_shared")) if home else Plan(())
        self.route_version: int = store.get("route_version", 0)
        self._routes: RouteTable | None = None

    # nodes
    def put_node(self, record: NodeRecord) -> None:
        self.nodes[record.id] = record
        self.store.upsert("nodes", record.id, {**asdict(record), "state": record.state.value})

    def set_node_state(self, node: str, state: NodeState) -> NodeRecord:
        current = self.nodes[node]
        if current.state is not state:
            check(current.state, state)
        record = replace(current, state=state)
        self.put_node(record)
        return record

    # apps and plans
    def put_app(self, spec: AppSpec) -> None:
        self.apps[spec.name] = spec
        self.store.upsert("apps", spec.name, spec.model_dump(mode="json"))

    def delete_app(self, name: str) -> None:
        self.apps.pop(name, None)
        self.serving.pop(name, None)
        with self.store.transaction() as db:
            self.store.delete("apps", name, db)
            self.store.delete("serving", name, db)
        self.set_plans(_without(self.plan, name), _without(self.home_plan, name))

    def set_plans(self, plan: Plan, home: Plan | None = None) -> None:
        self.plan = plan
        if home is not None:
            self.home_plan = home
        with self.store.transaction() as db:
            self.store.put("plan", plan_to_json(plan), db)
            self.store.put("plan_shared", shared_to_json(plan), db)
            if home is not None:
                self.store.put("home_plan", plan_to_json(home), db)
                self.store.put("home_plan_shared", shared_to_json(home), db)

    def set_serving(self, app: str, serving: Serving) -> None:
        current = self.serving.get(app)
        if current is not None and current.state is not serving.state:
            check(current.state, serving.state)
        self.serving[app] = serving
        self.store.upsert("serving", app, serving.to_json())

    # routes
    def route_table(self) -> RouteTable:
        """The table clients route by; bumps the version (and persists it) when it changes."""
        routes = tuple(self._route(app) for app in sorted(self.apps))
        if self._routes is None or self._routes.routes != routes:
            if self._routes is not None or not self.route_version:
                self.route_version += 1
                self.store.put("route_version", self.route_version)
            self._routes = RouteTable(version=self.route_version, routes=routes)
        return self._routes

    def route(self, app: str) -> Route:
        """``app``'s route as it stands, without touching the table's version (for read-only views)."""
        return self._route(app)

    def _route(self, app: str) -> Route:
        serving = self.serving.get(app, Serving(AppState.PENDING))
        targets: list[RouteTarget] = []
        if serving.replica is not None:
            role = (
                "stone" if serving.stone else ("primary" if serving.state is AppState.PRIMARY else "recovery")
            )
            target = self._target(app, serving.replica, role)
            if target is not None:
                targets.append(target)
        asg = self.plan.by_app().get(app)
        if asg is not None and asg.backup is not None and asg.backup.mode is Mode.WARM:
            backup = Replica(asg.backup.node, asg.backup.variant)
            if backup != serving.replica:
                target = self._target(app, backup, "backup")
                if target is not None:
                    targets.append(target)
        shared = self.plan.shared_for(app)
        if shared is not None:  # a warm fallback too: clients fail over and hedge to it at once
            fallback = Replica(shared.node, shared.variant)
            if fallback != serving.replica:
                target = self._target(app, fallback, "backup")
                if target is not None:
                    targets.append(target)
        spec = self.apps.get(app)
        return Route(
            app=app,
            state=serving.state.value,
            targets=tuple(targets),
            slo_ms=None if spec is None else spec.slo_ms,
        )

    def _target(self, app: str, replica: Replica, role: str) -> RouteTarget | None:
        node = self.nodes.get(replica.node)
        if node is None or node.state not in (NodeState.ALIVE, NodeState.SUSPECT):
            return None
        return RouteTarget(
            node=node.id,
            url=node.url,
            model=replica.variant,
            epoch=node.epoch,
            accuracy=self.accuracy_of(app, replica.variant),
            role=role,  # type: ignore[arg-type]
        )

    def accuracy_of(self, app: str, variant: str) -> float | None:
        spec = self.apps.get(app)
        if spec is None:
            return None
        own = self.accuracies.get((spec.family, variant))
        return own if own is not None else self.variant_accuracy.get(variant)


def _without(plan: Plan, app: str) -> Plan:
    """``plan`` less ``app``: its assignment, and its place in shared fallbacks (a fallback left
    serving nobody goes)."""
    shared = tuple(
        SharedFallback(s.node, s.family, s.variant, apps)
        for s in plan.shared
        if (apps := tuple(a for a in s.apps if a != app))
    )
    return Plan(tuple(a for a in plan if a.app != app), shared)
