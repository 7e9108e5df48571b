"""Request-path histograms counted as plain numbers and rendered by a Prometheus custom collector.

``prometheus_client.Histogram.observe`` takes a lock and walks the buckets on every call; a
request path that runs in well under a millisecond (the agent's infer handler, the gateway's)
cannot pay that. ``CountedHistogram.observe`` is a bisect, an addition to a list item and an
addition to a float (single-threaded: each histogram is only touched from its event loop), and
``histogram_family`` turns a set of them into a ``HistogramMetricFamily`` at scrape time, from a
``prometheus_client`` custom collector's ``collect``. Used by the agent and the gateway, with one
bucket layout (``LATENCY_BUCKETS``) so their request latencies can be compared bucket by bucket.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

__all__ = ["LATENCY_BUCKETS", "CountedHistogram", "histogram_family"]

# Request latencies of small edge models: from tens of microseconds (through the agent) to
# seconds (a failover that waited for a table, through the gateway).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CountedHistogram:
    """One histogram series: per-bucket counts (not cumulative, ``+Inf`` last) and the sum."""

    __slots__ = ("bounds", "counts", "names", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be increasing")
        self.bounds = bounds
        self.names = (*(floatToGoString(b) for b in bounds), "+Inf")
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a value on a bound counts in its bucket
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count up to and including that bound)`` per bucket, as Prometheus exposes them."""
        out, total = [], 0
        for name, count in zip(self.names, self.counts, strict=True):
            total += count
            out.append((name, float(total)))
        return out


def histogram_family(
    name: str, documentation: str, label: str, series: Iterable[tuple[str, CountedHistogram]]
) -> HistogramMetricFamily:
    """One metric family of ``(label value, histogram)`` series, for a custom collector."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in series:
        family.add_metric([value], histogram.cumulative(), histogram.sum)
    return family
