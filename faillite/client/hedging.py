"""The client's hedging policy: when to send an app's request to its warm fallback too, and how often.

Pure: no I/O, no clock (``now`` is an argument, in seconds on any monotonic scale), no asyncio;
the send loop in ``faillite.client.failover`` asks and reports. A hung primary (SIGSTOP, a
partition) still accepts connections, so only waiting reveals it; a hedge answers the request
from the first warm fallback after an *adaptive delay* instead of after the request timeout,
without waiting for the controller or for anyone's timeout.

Rules:
- **Delay.** ``max(3 x p50, p99)`` of the app's own recent answer times (the last ``window``
  first-attempt answers), floored at ``floor_ms`` (so ordinary jitter is not hedged) and bounded
  by ``slo_fraction`` of the app's SLO (so a hedge still has the rest of the SLO to answer in;
  the SLO wins over the floor). Until ``min_samples`` answers are known the delay is that bound.
- **Budget.** A token bucket per app: each request deposits ``ratio`` tokens, ``burst`` tokens
  also come back over every ``refill_s`` seconds, the bucket holds at most ``burst`` and a hedge
  spends one. Over any stretch of N requests lasting T seconds an app sends at most
  ``burst + ratio * N + burst * T / refill_s`` hedges. For an app at r requests/s under a
  sustained slowdown that is ``ratio + burst / (refill_s * r)`` extra requests: with the defaults
  5 % + 30 %/r (5.3 % at 100/s, 8 % at 10/s, 35 % at 1/s: the time refill, 0.3 hedges/s, is
  what keeps a rarely used app's isolated hang hedged, and is never a load), not twice the
  load, while an isolated hang (a full bucket) is always hedged.
- **Timeouts from the SLO.** A request's attempt timeout is ``timeout_multiple`` times the app's
  SLO (the hedge, not the timeout, catches hangs quickly, so the timeout can be generous: it only
  bounds a request whose hedge the budget refused); ``DEFAULT_SLO_MS`` when a route has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_SLO_MS",
    "AppHedging",
    "HedgeBudget",
    "HedgeConfig",
    "HedgeStats",
    "LatencyWindow",
    "attempt_timeout",
    "hedge_delay",
]

# What a route without an SLO is treated as: 10 x 50 ms is the 0.5 s attempt timeout the client
# and gateway used before timeouts came from SLOs, and a hedge goes out after at most 25 ms.
DEFAULT_SLO_MS = 50.0


@dataclass(frozen=True)
class HedgeConfig:
    p50_multiple: float = 3.0
    # Below a killed agent's teardown (4-5 ms here before its sockets reset), so a crash is
    # hedged before the kernel reports it; p99 keeps jitter out (1 ms vs 2 ms: SIGKILL MTTR
    # 4.2-5.4 vs 7.0-7.6 ms in one `faillite bench warm --baseline` run).
    floor_ms: float = 1.0
    slo_fraction: float = 0.5  # hedge by half the SLO: the fallback has the other half to answer
    window: int = 128  # answers per app the percentiles are taken over
    min_samples: int = 16
    ratio: float = 0.05  # at most 5 % extra requests per app under a sustained slowdown
    burst: float = 3.0
    refill_s: float = 10.0
    timeout_multiple: float = 10.0
    min_timeout_s: float = 0.05

    def __post_init__(self) -> None:
        if self.window < 1 or not 1 <= self.min_samples <= self.window:
            raise ValueError("need 1 <= min_samples <= window")
        if self.burst < 1 or self.ratio < 0 or self.refill_s <= 0:
            raise ValueError("need burst >= 1, ratio >= 0, refill_s > 0")
        if self.floor_ms < 0 or not 0 < self.slo_fraction <= 1 or self.timeout_multiple <= 0:
            raise ValueError("need floor_ms >= 0, 0 < slo_fraction <= 1, timeout_multiple > 0")


def hedge_delay(p50_s: float | None, p99_s: float | None, slo_ms: float | None, config: HedgeConfig) -> float:
    """Seconds to wait for the primary before hedging (None percentiles: no history yet)."""
    bound = (slo_ms or DEFAULT_SLO_MS) / 1000 * config.slo_fraction
    if p50_s is None or p99_s is None:
        return bound
    return min(bound, max(config.floor_ms / 1000, config.p50_multiple * p50_s, p99_s))


def attempt_timeout(slo_ms: float | None, config: HedgeConfig) -> float:
    """Seconds one attempt at a target may take before it is suspected, from the app's SLO."""
    return max(config.min_timeout_s, (slo_ms or DEFAULT_SLO_MS) / 1000 * config.timeout_multiple)


class LatencyWindow:
    """The last ``size`` answer times of one app, with p50/p99 recomputed every few samples.

    Percentiles are cached: recomputing them (a sort) on every request would cost more than the
    rest of the client's work on the common path, and a few samples do not move them.
    """

    __slots__ = ("_every", "_min", "_next", "_p50", "_p99", "_samples", "_since", "_size")

    def __init__(self, size: int = 128, min_samples: int = 16, every: int = 8) -> None:
        self._size, self._min, self._every = size, min_samples, every
        self._samples: list[float] = []
        self._next = 0
        self._since = 0
        self._p50: float | None = None
        self._p99: float | None = None

    def __len__(self) -> int:
        return len(self._samples)

    def record(self, seconds: float) -> None:
        if len(self._samples) < self._size:
            self._samples.append(seconds)
        else:
            self._samples[self._next] = seconds
            self._next = (self._next + 1) % self._size
        self._since += 1
        if len(self._samples) >= self._min and (self._p50 is None or self._since >= self._every):
            ordered = sorted(self._samples)
            self._p50 = ordered[len(ordered) // 2]
            self._p99 = ordered[min(len(ordered) - 1, (len(ordered) * 99) // 100)]
            self._since = 0

    @property
    def p50(self) -> float | None:
        return self._p50

    @property
    def p99(self) -> float | None:
        return self._p99


class HedgeBudget:
    """One app's hedge allowance (see the module's rules). Starts full: the first hang is hedged."""

    __slots__ = ("_last", "burst", "ratio", "refill_s", "tokens")

    def __init__(self, ratio: float = 0.05, burst: float = 3.0, refill_s: float = 10.0) -> None:
        self.ratio, self.burst, self.refill_s = ratio, burst, refill_s
        self.tokens = burst
        self._last: float | None = None

    def on_request(self, now: float) -> None:
        """A request started (hedged or not): it earns ``ratio`` of a hedge."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def try_spend(self, now: float) -> bool:
        """Take one hedge from the budget; False (and nothing taken) when it is spent."""
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.burst / self.refill_s)
        if self._last is None or now > self._last:
            self._last = now


@dataclass
class HedgeStats:
    """Counters of one app (or of all apps): requests and what hedging did for them."""

    requests: int = 0  # requests started
    hedges_sent: int = 0  # requests also sent to a fallback because the primary was slow
    hedges_won: int = 0  # ... whose answer came from the fallback
    hedges_refused: int = 0  # hedges the budget did not allow (the request kept waiting)
    suspected: int = 0  # primaries that had still not answered a grace after losing to a hedge

    def add(self, other: HedgeStats) -> None:
        self.requests += other.requests
        self.hedges_sent += other.hedges_sent
        self.hedges_won += other.hedges_won
        self.hedges_refused += other.hedges_refused
        self.suspected += other.suspected


@dataclass
class AppHedging:
    """Everything the hedging policy keeps per app."""

    config: HedgeConfig
    latency: LatencyWindow = field(init=False)
    budget: HedgeBudget = field(init=False)
    stats: HedgeStats = field(default_factory=HedgeStats)

    def __post_init__(self) -> None:
        c = self.config
        self.latency = LatencyWindow(c.window, c.min_samples)
        self.budget = HedgeBudget(c.ratio, c.burst, c.refill_s)

    def delay(self, slo_ms: float | None) -> float:
        return hedge_delay(self.latency.p50, self.latency.p99, slo_ms, self.config)
