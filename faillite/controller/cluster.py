"""Persistence of the controller's state, and the route table clients route by.

The controller owns one ``ControlState`` (``faillite.controller.model``); this module loads it
from the state store at startup (``load_state``) and writes through every applied effect
that changes what must survive a restart: nodes, apps, where each app is served, the plan
and the home plan (``ClusterState.persist``). ``ClusterState.record`` is apply + persist, so
memory and disk never disagree. The route table is derived from the state (and versioned).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from faillite.controller.decide import Replica, SetServing
from faillite.controller.effects import Effect, PutApp, PutNode, RemoveApp, SetNodeState, SetPlan
from faillite.controller.model import LIVE_STATES, ControlState, NodeRecord, PolicyConfig, Serving
from faillite.controller.planning import AppSpec, plan_from_json, plan_to_json, shared_to_json
from faillite.controller.reduce import apply
from faillite.controller.states import AppState, NodeState
from faillite.controller.store import StateStore
from faillite.placement import Family, Mode, Plan, PlannerParams
from faillite.wire import Route, RouteTable, RouteTarget

__all__ = ["ClusterState", "NodeRecord", "Serving", "load_state"]


def load_state(
    store: StateStore, families: Mapping[str, Family], params: PlannerParams, config: PolicyConfig
) -> ControlState:
    """The state as the store left it (after a restart: nodes, apps, serving, plans)."""
    plan = store.get("plan")
    home = store.get("home_plan")
    return ControlState(
        families,
        params,
        config,
        nodes={
            k: NodeRecord(**{**v, "state": NodeState(v["state"])}) for k, v in store.rows("nodes").items()
        },
        apps={k: AppSpec.model_validate(v) for k, v in store.rows("apps").items()},
        plan=plan_from_json(plan, store.get("plan_shared")) if plan else Plan(()),
        home_plan=plan_from_json(home, store.get("home_plan_shared")) if home else Plan(()),
        serving={k: Serving.from_json(v) for k, v in store.rows("serving").items()},
    )


class ClusterState:
    def __init__(
        self, store: StateStore, accuracies: Mapping[tuple[str, str], float], state: ControlState
    ) -> None:
        self.store = store
        self.state = state  # the controller's; read here, changed only through ``record``
        self.accuracies = accuracies  # (family, variant) -> accuracy, for routes and reports
        # variant -> accuracy: a shared fallback answers an app with another family's variant
        self.variant_accuracy = {variant: acc for (_, variant), acc in accuracies.items()}
        self.route_version: int = store.get("route_version", 0)
        self._routes: RouteTable | None = None

    # read views of the state
    @property
    def nodes(self) -> Mapping[str, NodeRecord]:
        return self.state.nodes

    @property
    def apps(self) -> Mapping[str, AppSpec]:
        return self.state.apps

    @property
    def serving(self) -> Mapping[str, Serving]:
        return self.state.serving

    @property
    def plan(self) -> Plan:
        return self.state.plan

    @property
    def home_plan(self) -> Plan:
        return self.state.home_plan

    # writes
    def record(self, effect: Effect) -> None:
        """Apply ``effect`` to the state, then write what it changed to the store."""
        apply(self.state, effect)
        self.persist(effect)

    def persist(self, effect: Effect) -> None:
        state, store = self.state, self.store
        match effect:
            case SetServing(app=app) if app in state.serving:
                store.upsert("serving", app, state.serving[app].to_json())
            case SetNodeState(node=node) | PutNode(record=NodeRecord(id=node)):
                record = state.nodes[node]
                store.upsert("nodes", node, {**asdict(record), "state": record.state.value})
            case PutApp(spec=spec):
                store.upsert("apps", spec.name, spec.model_dump(mode="json"))
            case RemoveApp(app=app):
                with store.transaction() as db:
                    store.delete("apps", app, db)
                    store.delete("serving", app, db)
                self._put_plans(both=True)
            case SetPlan(home=home):
                self._put_plans(both=home is not None)
            case _:
                pass  # the rest lives in memory only (agents, loads, programs...)

    def _put_plans(self, *, both: bool) -> None:
        with self.store.transaction() as db:
            self.store.put("plan", plan_to_json(self.state.plan), db)
            self.store.put("plan_shared", shared_to_json(self.state.plan), db)
            if both:
                self.store.put("home_plan", plan_to_json(self.state.home_plan), db)
                self.store.put("home_plan_shared", shared_to_json(self.state.home_plan), db)

    # shorthands (tests and setup): each one effect, recorded
    def put_node(self, record: NodeRecord) -> None:
        self.record(PutNode(record, "put"))

    def set_node_state(self, node: str, state: NodeState) -> None:
        self.record(SetNodeState(node, state, "set"))

    def put_app(self, spec: AppSpec) -> None:
        self.record(PutApp(spec))

    def delete_app(self, name: str) -> None:
        self.record(RemoveApp(name))

    def set_plans(self, plan: Plan, home: Plan | None = None) -> None:
        self.record(SetPlan(plan, home))

    def set_serving(self, app: str, serving: Serving) -> None:
        self.record(SetServing(app, serving.replica, serving.state, "set", serving.stone))

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
        if node is None or node.state not in LIVE_STATES:
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
