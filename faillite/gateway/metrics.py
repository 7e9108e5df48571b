"""The gateway's Prometheus metrics (``GET /metrics``), in its own ``CollectorRegistry``.

Requests and their latency per app (and answer status) are counted inline by the infer handler
(one cached child per app and status: a dictionary look-up, no label parsing per request). What
the failover client knows — hedges sent, won, refused by the budget, primaries suspected after
losing to a hedge, and each routed app's current hedge delay and attempt timeout — is read from
the client at scrape time by a custom collector, so it costs the request path nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from faillite.client.failover import Client

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HEDGE_COUNTERS = (  # (HedgeStats field, metric, help); exposed with a _total suffix
    (
        "hedges_sent",
        "faillite_gateway_hedges_sent",
        "Requests also sent to a warm fallback because the primary was slow",
    ),
    ("hedges_won", "faillite_gateway_hedges_won", "Hedged requests answered by the fallback"),
    (
        "hedges_refused",
        "faillite_gateway_hedges_refused",
        "Hedges the per-app budget did not allow (the request kept waiting for the primary)",
    ),
    (
        "suspected",
        "faillite_gateway_hedge_suspects",
        "Primaries still silent a grace after losing to a hedge (marked, reported to the controller)",
    ),
)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    def __init__(self, client: Client) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "faillite_gateway_requests",
            "Inference requests for a routed app, by the status answered",
            ["app", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "faillite_gateway_request_seconds",
            "Time from a routed app's request to its answer, failovers and hedges included",
            ["app"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self.registry.register(_ClientCollector(client))

    def observe(self, app: str, status: int, seconds: float) -> None:
        children = self._children.get((app, status))
        if children is None:
            children = self._children[(app, status)] = (
                self._requests.labels(app, str(status)),
                self._latency.labels(app),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ClientCollector(Collector):
    def __init__(self, client: Client) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        stats = self.client.stats
        for field, name, doc in _HEDGE_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["app"])
            for app, app_stats in sorted(stats.items()):
                family.add_metric([app], getattr(app_stats, field))
            yield family
        routes = self.client.routes
        apps = [] if routes is None else sorted(route.app for route in routes.routes)
        timeout = GaugeMetricFamily(
            "faillite_gateway_attempt_timeout_seconds",
            "How long one attempt at a replica may take (from the app's SLO, or --request-timeout)",
            labels=["app"],
        )
        delay = GaugeMetricFamily(
            "faillite_gateway_hedge_delay_seconds",
            "How long the next request waits for the primary before hedging (adaptive)",
            labels=["app"],
        )
        for app in apps:
            timeout.add_metric([app], self.client.attempt_timeout(app))
            hedge_delay = self.client.hedge_delay(app)
            if hedge_delay is not None:
                delay.add_metric([app], hedge_delay)
        yield timeout
        yield delay
