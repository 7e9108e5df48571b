"""Prometheus metrics of one agent, in a registry of its own (never the process-global one),
so that several agents (or tests) in one process do not share counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from faillite.promtext import CountedHistogram, histogram_family

__all__ = ["AgentMetrics", "ModelMetrics"]

_LOAD_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ModelMetrics(CountedHistogram):
    """One model's request series, kept as plain numbers: the request path adds to an int and
    ``observe``s its latency into a ``faillite.promtext.CountedHistogram`` (this object), and
    ``_InferenceCollector`` turns them into Prometheus families at scrape time (``Counter.inc``
    and ``Histogram.observe`` take a lock and walk the buckets on every call)."""

    __slots__ = ("_by_code", "_failures", "_model", "requests")

    def __init__(self, failures: Counter, model: str) -> None:
        super().__init__()
        self.requests = 0
        self._failures = failures
        self._model = model
        self._by_code: dict[int, Counter] = {}

    def failed(self, status: int) -> None:
        child = self._by_code.get(status)
        if child is None:
            child = self._by_code[status] = self._failures.labels(self._model, str(status))
        child.inc()


class _InferenceCollector(Collector):
    """The request count and latency histogram of every model, read from ``ModelMetrics``."""

    def __init__(self, models: dict[str, ModelMetrics]) -> None:
        self._models = models

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked families: names are fixed and do not clash

    def collect(self) -> Iterator[Metric]:
        models = list(self._models.items())
        requests = CounterMetricFamily(
            "faillite_agent_inference_requests", "Inference requests received, per model", labels=["model"]
        )
        for name, series in models:
            requests.add_metric([name], series.requests)
        yield requests
        yield histogram_family(
            "faillite_agent_inference_duration_seconds",
            "Time to answer a successful inference request (body read to response built)",
            "model",
            models,
        )


class AgentMetrics:
    def __init__(
        self, node_id: str, budget_bytes: int, used_bytes: Callable[[], int], ready_models: Callable[[], int]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.failures = Counter(
            "faillite_agent_inference_failures",
            "Inference requests answered with an error, per model and HTTP status",
            ["model", "code"],
            registry=r,
        )
        self.load_duration = Histogram(
            "faillite_agent_model_load_duration_seconds",
            "Time ONNX Runtime took to create a model's session",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.loads = Counter(
            "faillite_agent_model_loads",
            "Load requests per model and outcome (loaded, already_loaded, refused, failed)",
            ["model", "outcome"],
            registry=r,
        )
        self.model_memory = Gauge(
            "faillite_agent_model_memory_bytes",
            "Bytes charged to the budget per loaded model",
            ["model"],
            registry=r,
        )
        Gauge("faillite_agent_memory_budget_bytes", "The node's memory budget", registry=r).set(budget_bytes)
        Gauge("faillite_agent_memory_used_bytes", "Bytes of the budget in use", registry=r).set_function(
            used_bytes
        )
        Gauge("faillite_agent_models_ready", "Models loaded and serving", registry=r).set_function(
            ready_models
        )
        Gauge("faillite_agent_info", "Constant 1, labelled with the node id", ["node_id"], registry=r).labels(
            node_id
        ).set(1)
        self._models: dict[str, ModelMetrics] = {}
        r.register(_InferenceCollector(self._models))

    def model(self, name: str) -> ModelMetrics:
        """The cached series of ``name`` (only ever called with repository model names)."""
        series = self._models.get(name)
        if series is None:
            series = self._models[name] = ModelMetrics(self.failures, name)
        return series

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
