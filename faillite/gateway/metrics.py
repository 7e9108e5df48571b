"""The gateway's Prometheus metrics (``GET /metrics``), in its own ``CollectorRegistry``.

Requests and their latency per app (and answer status) are counted by the infer handler as
plain numbers (dictionary look-ups and additions: ``faillite.promtext.CountedHistogram``) and
rendered at scrape time. What
the failover client knows — hedges sent, won, refused by the budget, primaries suspected after
losing to a hedge, and each routed app's current hedge delay and attempt timeout — is read from
the client at scrape time by a custom collector, so it costs the request path nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from faillite.client.failover import Client
from faillite.promtext import CountedHistogram, histogram_family

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST  # what generate_latest writes
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


class GatewayMetrics:
    def __init__(self, client: Client) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests: dict[tuple[str, int], int] = {}  # (app, status) -> requests
        self._latency: dict[str, CountedHistogram] = {}
        self.registry.register(_RequestCollector(self._requests, self._latency))
        self.registry.register(_ClientCollector(client))

    def observe(self, app: str, status: int, seconds: float) -> None:
        """Count one request: two dictionary look-ups and three additions (rendered at scrape time)."""
        key = (app, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(app)
        if latency is None:
            latency = self._latency[app] = CountedHistogram()
        latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCollector(Collector):
    def __init__(self, requests: dict[tuple[str, int], int], latency: dict[str, CountedHistogram]) -> None:
        self._requests, self._latency = requests, latency

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "faillite_gateway_requests",
            "Inference requests for a routed app, by the status answered",
            labels=["app", "code"],
        )
        for (app, status), count in sorted(self._requests.items()):
            requests.add_metric([app, str(status)], count)
        yield requests
        yield histogram_family(
            "faillite_gateway_request_seconds",
            "Time from a routed app's request to its answer, failovers and hedges included",
            "app",
            sorted(self._latency.items()),
        )


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
