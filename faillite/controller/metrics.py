"""The controller's Prometheus metrics (``GET /metrics``), in its own ``CollectorRegistry``.

Two sources: counters and the recovery-time histogram are fed by the event log (a listener
called inline on every event, so they count what the log records); gauges (nodes, apps by
state, accuracy drop, planned memory) are computed from the cluster state at scrape time by
a custom collector, through the same views as ``/v1/status``.

Failover kinds: ``warm`` (switched to a loaded backup), ``progressive`` (a cold backup reached
through a fast stepping stone first), ``cold`` (a cold backup loaded and served directly).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from faillite.controller.core import Controller
from faillite.controller.events import EventKind
from faillite.controller.states import AppState, NodeState
from faillite.controller.status import accuracy_drop, app_mode, count_by, node_views

__all__ = ["APP_MODES", "CONTENT_TYPE", "ControllerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
APP_MODES = (
    AppState.PENDING.value,
    AppState.PRIMARY.value,
    "failed_over_warm",
    "failed_over_cold",
    AppState.STEPPING.value,
    AppState.RECOVERING.value,
    AppState.UNAVAILABLE.value,
)
_RECOVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ControllerMetrics:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.registry = CollectorRegistry(auto_describe=True)
        self.failovers = Counter(
            "faillite_failovers",
            "Apps recovered after their node failed, by how (warm, progressive, cold)",
            ["kind"],
            registry=self.registry,
        )
        self.recovery = Histogram(
            "faillite_recovery_seconds",
            "Time from a node's failure to its app being served again, as the controller sees it",
            ["kind"],
            buckets=_RECOVERY_BUCKETS,
            registry=self.registry,
        )
        self.node_failures = Counter("faillite_node_failures", "Nodes declared dead", registry=self.registry)
        self.suspicions = Counter(
            "faillite_failure_suspicions", "Failures suspected by clients", registry=self.registry
        )
        self.events = Counter(
            "faillite_events", "Events written to the event log, by kind", ["kind"], registry=self.registry
        )
        self.steps = Histogram(
            "faillite_controller_step_seconds",
            "Time one step of a controller loop took (reconcile, failure detection, climb)",
            ["step"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.step_errors = Counter(
            "faillite_controller_step_errors",
            "Controller loop steps that raised (logged, and the loop went on)",
            ["step"],
            registry=self.registry,
        )
        for kind in ("warm", "progressive", "cold"):  # export zeros before the first failure
            self.failovers.labels(kind)
            self.recovery.labels(kind)
        self.registry.register(_StateCollector(controller))
        self._last_reason: dict[str, str] = {}  # app -> reason of its latest route change
        controller.events.listen(self.on_event)
        controller.step_observers.append(self.on_step)

    def on_step(self, step: str, seconds: float, failed: bool) -> None:
        name = step.removesuffix("_once")
        self.steps.labels(name).observe(seconds)
        if failed:
            self.step_errors.labels(name).inc()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        self.events.labels(kind).inc()
        if kind == EventKind.NODE_DEAD:
            self.node_failures.inc()
        elif kind == EventKind.FAILURE_SUSPECTED:
            self.suspicions.inc()
        elif kind == EventKind.ROUTE_CHANGED:
            self._last_reason[str(event.get("app"))] = str(event.get("reason", ""))
        elif kind == EventKind.APP_RECOVERED:
            app = str(event.get("app"))
            if self._last_reason.get(app) == "warm backup":
                how = "warm"
            elif event.get("state") == AppState.STEPPING.value:
                how = "progressive"
            else:
                how = "cold"
            self.failovers.labels(how).inc()
            ms = event.get("recovery_ms")
            if isinstance(ms, int | float):
                self.recovery.labels(how).observe(ms / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges read from the cluster state at scrape time."""

    def __init__(self, controller: Controller) -> None:
        self.c = controller

    def collect(self) -> Iterator[Metric]:
        cluster = self.c.cluster
        nodes = GaugeMetricFamily("faillite_nodes", "Nodes by state", labels=["state"])
        for state, n in count_by((n.state.value for n in cluster.nodes.values()), NodeState).items():
            nodes.add_metric([str(state)], n)
        yield nodes
        up = GaugeMetricFamily(
            "faillite_node_up", "1 when the node is alive (or suspect), else 0", labels=["node"]
        )
        for n in sorted(cluster.nodes.values(), key=lambda n: n.id):
            up.add_metric([n.id], 1 if n.state in (NodeState.ALIVE, NodeState.SUSPECT) else 0)
        yield up
        yield CounterMetricFamily(
            "faillite_controller_task_errors", "Background tasks that raised", self.c.task_errors
        )
        yield from self._memory()
        apps = GaugeMetricFamily(
            "faillite_apps", "Apps by state (failed over split into warm and cold)", labels=["state"]
        )
        for mode, n in count_by((app_mode(self.c, a) for a in cluster.apps), APP_MODES).items():
            apps.add_metric([mode], n)
        yield apps
        plan = cluster.plan.by_app()
        unprotected = sum(1 for a in cluster.apps if a not in plan or plan[a].backup is None)
        yield GaugeMetricFamily("faillite_apps_unprotected", "Apps without a backup in the plan", unprotected)
        drop = GaugeMetricFamily(
            "faillite_app_accuracy_drop_ratio",
            "Accuracy of the app's intended primary minus that of the variant serving it now",
            labels=["app"],
        )
        for app in sorted(cluster.apps):
            value = accuracy_drop(self.c, app)
            if value is not None:
                drop.add_metric([app], value)
        yield drop
        yield GaugeMetricFamily(
            "faillite_route_table_version",
            "Version of the route table pushed to clients",
            cluster.route_version,
        )

    def _memory(self) -> Iterator[Metric]:
        budget = GaugeMetricFamily("faillite_node_memory_bytes", "Node memory budget", labels=["node"])
        used = GaugeMetricFamily(
            "faillite_node_used_bytes", "Memory the node's agent reports in use", labels=["node"]
        )
        planned = GaugeMetricFamily(
            "faillite_node_planned_bytes",
            "Memory the plan gives the node: primaries, warm backups, cold reservation (worst failure)",
            labels=["node", "kind"],
        )
        for view in node_views(self.c):
            budget.add_metric([view["id"]], view["memory_bytes"])
            used.add_metric([view["id"]], view["used_bytes"])
            for kind, value in view["planned"].items():
                planned.add_metric([view["id"], kind], value)
        yield from (budget, used, planned)
