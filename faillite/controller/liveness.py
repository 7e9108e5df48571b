"""Failure detection, layered: connection close (crash), an adaptive heartbeat timeout (hang,
partition), and client suspicions (which shorten the wait). Pure: callers pass ``now``.

The heartbeat timeout is phi-accrual in its threshold form (Hayashibara et al., 2004; the
variant Akka and Cassandra use): each node keeps its own history of heartbeat inter-arrival
times, and the node is declared dead once its silence is improbable under a normal
distribution fitted to that history,

    dead_after = mean + acceptable_pause + z(phi_dead) * max(std, min_std) + agent_lag

where ``z(phi)`` is the normal quantile with tail probability ``10**-phi`` and ``agent_lag``
is the largest event-loop lag the agent itself reported in its recent beats (a starved agent
says so). The acceptable pause grows with the CPU pressure the agent reports for its box
(Linux PSI "some avg10": the share of time a runnable task waited for a CPU): on a saturated
box any process may be descheduled for a while, even one whose beats were regular so far.
The timeout is never below the largest gap already seen in the history plus the acceptable
pause (a node that stalled that long and came back is not dead), nor above ``max_timeout_s``.
On a quiet machine the history is regular and the timeout sits near its floor (about twice
the interval); on a saturated one the history is jittered and the timeout widens by itself.
A suspicion (a client could not reach the node) uses the same formula with ``phi_suspect``
and no acceptable pause: the silence must still be improbable, only less so.

The silence is measured on a clock that does not advance while the controller's own event
loop was stalled (the caller subtracts its measured lag): a controller that was not scheduled
did not hear heartbeats that may well have been sent.

Promises keep the agent's self-fencing consistent with this detector: the controller tells
each agent the shortest silence after which it may declare it dead (``fence_after``), and
never declares a node dead earlier than any promise the agent may still hold; a lower promise
takes effect only once the agent has acknowledged it (see ``faillite.agent.link``).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["DEFAULT_INTERVAL_MS", "Detector", "Heartbeats", "StallClock", "Verdict"]

DEFAULT_INTERVAL_MS = 60.0  # agents beat this often unless told otherwise


@functools.cache
def _z(phi: float) -> float:
    """The normal quantile whose upper tail is ``10**-phi``."""
    return NormalDist().inv_cdf(1.0 - 10.0**-phi)


@dataclass
class Heartbeats:
    """What the controller has heard from one node's current connection (detector state; what
    the agent holds is in ``ControlState.agents``)."""

    epoch: int
    last_seen: float
    suspected_at: float | None = None
    intervals: deque[float] = field(default_factory=deque)
    lags: deque[float] = field(default_factory=deque)
    longest: float = 0.0  # the longest interval in the history
    lag: float = 0.0  # the largest lag in ``lags``
    pressure: float = 0.0  # the agent's box: share of time a task waited for a CPU (last 10 s)
    total: float = 0.0  # sum of intervals
    total_sq: float = 0.0  # sum of squared intervals
    dead_after: float = math.inf  # silences beyond these are verdicts (recomputed per beat)
    suspect_after: float = math.inf
    promises: list[tuple[int, float]] = field(
        default_factory=list
    )  # (version, fence_after) the agent may hold
    acked: int = 0  # the promise version the agent last confirmed applying

    def floor(self) -> float:
        """The longest fence bound the agent may currently apply: never declare dead before it."""
        return max((value for _, value in self.promises), default=0.0)


@dataclass
class StallClock:
    """The controller's clock minus the time its own event loop was stalled.

    A periodic tick reports when it was due and when it ran; lateness beyond ``tolerance_s``
    is time the controller could not have heard anything, so silences do not accrue during it.
    """

    tolerance_s: float = 0.005
    stalled_s: float = 0.0
    worst_s: float = 0.0  # the longest single stall seen (reported in status)

    def tick(self, due: float, now: float) -> None:
        late = now - due - self.tolerance_s
        if late > 0:
            self.stalled_s += late
            self.worst_s = max(self.worst_s, late)

    def now(self, real: float) -> float:
        return real - self.stalled_s


@dataclass(frozen=True)
class Verdict:
    node: str
    reason: str
    silent_ms: float  # how long the node had been silent when declared dead


@dataclass(frozen=True)
class Detector:
    interval_s: float = DEFAULT_INTERVAL_MS / 1000  # how often agents beat (the prior before any history)
    phi_dead: float = 8.0  # declare dead when P(a beat this late) < 10**-phi_dead
    phi_suspect: float = 3.0  # after a client's suspicion, when P(a beat this late) < 10**-phi_suspect
    acceptable_pause_s: float = 0.03  # extra silence always tolerated (a GC, a scheduling hiccup)
    min_std_s: float = 0.005  # floor on the spread: a perfectly regular history is not a promise
    max_timeout_s: float = 2.0  # the adaptive timeout never exceeds this
    min_timeout_s: float = 0.0  # operator floor on the dead timeout (``heartbeat_timeout_ms``)
    history: int = 200  # inter-arrival samples kept per node (12 s at 60 ms)
    lag_history: int = 20  # recent agent-reported lags considered
    warmup: int = 30  # beats before the history alone sets the spread (a wider prior until then)
    pressure_pause_s: float = 0.4  # extra pause at 100 % CPU pressure on the agent's box (linear)
    quiet_pressure: float = 0.1  # CPU pressure up to this is a quiet box (no extra pause)

    def describe(self) -> dict[str, float]:
        """The parameters, by name, in milliseconds where they are times (for reports)."""
        return {
            "heartbeat_interval_ms": self.interval_s * 1000,
            "phi_dead": self.phi_dead,
            "phi_suspect": self.phi_suspect,
            "acceptable_pause_ms": self.acceptable_pause_s * 1000,
            "min_std_ms": self.min_std_s * 1000,
            "max_timeout_ms": self.max_timeout_s * 1000,
            "min_timeout_ms": self.min_timeout_s * 1000,
            "history": self.history,
            "warmup": self.warmup,
            "pressure_pause_ms": self.pressure_pause_s * 1000,
            "quiet_pressure": self.quiet_pressure,
            "quiet_timeout_ms": round(self.quiet_timeout_s() * 1000, 1),
        }

    # thresholds
    def _threshold(self, hb: Heartbeats, phi: float, pause: float) -> float:
        n = len(hb.intervals)
        if n < 3:  # no history yet: the nominal interval
            mean, std, longest = self.interval_s, 0.0, self.interval_s
        else:
            mean = hb.total / n
            std = math.sqrt(max(hb.total_sq / n - mean * mean, 0.0))
            longest = hb.longest
        # Warming up (a node that just joined, maybe on a busy box): a wide spread, narrowing
        # to the measured one as the history fills.
        floor = self.min_std_s
        if n < self.warmup:
            floor = max(floor, self.interval_s / 2 * (1 - n / self.warmup))
        # A saturated box may starve any process: widen with the pressure beyond a quiet level.
        pause += (
            self.pressure_pause_s * max(hb.pressure - self.quiet_pressure, 0.0) / (1 - self.quiet_pressure)
        )
        t = mean + pause + _z(phi) * max(std, floor) + hb.lag
        return min(max(t, longest + pause), self.max_timeout_s)

    def quiet_timeout_s(self) -> float:
        """The dead timeout of a perfectly regular node: detection time of a hang on a quiet box."""
        n = max(self.warmup, 3)
        hb = Heartbeats(0, 0.0, intervals=deque([self.interval_s] * n), longest=self.interval_s)
        hb.total, hb.total_sq = self.interval_s * n, self.interval_s**2 * n
        return max(self._threshold(hb, self.phi_dead, self.acceptable_pause_s), self.min_timeout_s)

    def new(self, epoch: int, now: float) -> Heartbeats:
        """The state of a node that has just (re)connected, heard from at ``now``."""
        hb = Heartbeats(epoch, now)
        self._recompute(hb)
        hb.promises = [(0, self.fence_after(hb))]  # version 0 travels in the Welcome
        return hb

    def _recompute(self, hb: Heartbeats) -> None:
        hb.suspect_after = self._threshold(hb, self.phi_suspect, 0.0)
        hb.dead_after = max(self._threshold(hb, self.phi_dead, self.acceptable_pause_s), self.min_timeout_s)

    def fence_after(self, hb: Heartbeats) -> float:
        """The shortest silence after which this node may be declared dead (by any rule)."""
        return min(hb.suspect_after, hb.dead_after)

    # inputs
    def arrival(
        self, hb: Heartbeats, now: float, lag_s: float = 0.0, acked: int | None = None, pressure: float = 0.0
    ) -> None:
        """A heartbeat arrived at ``now``; the agent reports its loop lag, its applied promise and
        its box's CPU pressure (0-1)."""
        hb.pressure = pressure
        gap = now - hb.last_seen
        if gap > 0:
            hb.intervals.append(gap)
            hb.total += gap
            hb.total_sq += gap * gap
            hb.longest = max(hb.longest, gap)
            if len(hb.intervals) > self.history:
                old = hb.intervals.popleft()
                hb.total -= old
                hb.total_sq -= old * old
                if old >= hb.longest:
                    hb.longest = max(hb.intervals)
        hb.last_seen = max(hb.last_seen, now)
        lag = max(lag_s, 0.0)
        hb.lags.append(lag)
        hb.lag = max(hb.lag, lag)
        if len(hb.lags) > self.lag_history and hb.lags.popleft() >= hb.lag:
            hb.lag = max(hb.lags)
        if acked is not None and acked > hb.acked:
            hb.acked = acked
            hb.promises = [(v, value) for v, value in hb.promises if v >= acked]
        self._recompute(hb)

    def next_promise(self, hb: Heartbeats, step: float = 0.2) -> tuple[int, float] | None:
        """A new fence bound to send the agent, when the current one is off by more than ``step``.

        Recorded at once: a higher bound may already be applied when it arrives, a lower one
        only counts once acknowledged (until then ``floor`` keeps the higher ones).
        """
        wanted = self.fence_after(hb)
        version, current = hb.promises[-1] if hb.promises else (0, 0.0)
        if current and abs(wanted - current) <= step * current:
            return None
        promise = (version + 1, wanted)
        hb.promises.append(promise)
        return promise

    # verdicts
    def check(self, nodes: dict[str, Heartbeats], now: float) -> list[Verdict]:
        verdicts = []
        for node, hb in sorted(nodes.items()):
            verdict = self.judge(node, hb, now)
            if verdict is not None:
                verdicts.append(verdict)
        return verdicts

    def judge(self, node: str, hb: Heartbeats, now: float) -> Verdict | None:
        silent = now - hb.last_seen
        floor = hb.floor()
        if hb.lags and hb.lags[-1] > self.max_timeout_s:  # beats flow, but the agent's loop is wedged
            return Verdict(node, f"event loop stalled for {hb.lags[-1] * 1000:.0f} ms", silent * 1000)
        if silent > max(hb.dead_after, floor):
            return Verdict(
                node,
                f"no heartbeat for {silent * 1000:.0f} ms (adaptive timeout {hb.dead_after * 1000:.0f} ms)",
                silent * 1000,
            )
        if (
            hb.suspected_at is not None
            and hb.last_seen < hb.suspected_at
            and silent > max(hb.suspect_after, floor)
        ):
            return Verdict(node, f"suspected by a client, silent for {silent * 1000:.0f} ms", silent * 1000)
        return None

    def on_suspicion(self, hb: Heartbeats, now: float) -> Verdict | None:
        """A client could not reach the node: mark it, or condemn it at once if already silent."""
        if hb.suspected_at is None:
            hb.suspected_at = now
        silent = now - hb.last_seen
        if silent > max(hb.suspect_after, hb.floor()):
            return Verdict("", f"suspected by a client, silent for {silent * 1000:.0f} ms", silent * 1000)
        return None

    def deadline(self, hb: Heartbeats) -> float:
        """When this node's silence would become a verdict, if nothing arrives before."""
        floor = hb.floor()
        after = max(hb.dead_after, floor)
        if hb.suspected_at is not None and hb.last_seen < hb.suspected_at:
            after = min(after, max(hb.suspect_after, floor))
        return hb.last_seen + after

    def next_deadline(self, nodes: dict[str, Heartbeats]) -> float:
        """The earliest time at which a verdict could become due (for an event-driven checker)."""
        return min((self.deadline(hb) for hb in nodes.values()), default=math.inf)
