"""The gateway's Prometheus metrics (``GET /metrics``), in its own ``CollectorRegistry``.

Requests and their latency per app (and answer status) are counted by the infer handler as
plain numbers (a dictionary look-up and an addition) and rendered at scrape time. What
the failover client knows — hedges sent, won, refused by the budget, primaries suspected after
losing to a hedge, and each routed app's current hedge delay and attempt timeout — is read from
the client at scrape time by a custom collector, so it costs the request path nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
_BUCKET_NAMES = (*(floatToGoString(b) for b in _LATENCY_BUCKETS), "+Inf")


class GatewayMetrics:
    def __init__(self, client: Client) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests: dict[tuple[str, int], int] = {}  # (app, status) -> requests
        self._latency: dict[str, list[float]] = {}  # app -> per-bucket counts (+Inf last), then the sum
        self.registry.register(_RequestCollector(self._requests, self._latency))
        self.registry.register(_ClientCollector(client))

    def observe(self, app: str, status: int, seconds: float) -> None:
        """Count one request: two dictionary look-ups and two additions (rendered at scrape time)."""
        key = (app, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(app)
        if latency is None:
            latency = self._latency[app] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        latency[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        latency[-1] += seconds

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCollector(Collector):
    def __init__(self, requests: dict[tuple[str, int], int], latency: dict[str, list[float]]) -> None:
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
        latency = HistogramMetricFamily(
            "faillite_gateway_request_seconds",
            "Time from a routed app's request to its answer, failovers and hedges included",
            labels=["app"],
        )
        for app, counts in sorted(self._latency.items()):
            cumulative, total = [], 0.0
            for bound, count in zip(_BUCKET_NAMES, counts[:-1], strict=True):
                total += count
                cumulative.append((bound, total))
            latency.add_metric([app], cumulative, counts[-1])
        yield requests
        yield latency


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
