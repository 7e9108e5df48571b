"""Simulated clients: the real routing and hedging policies, with simulated sends.

Each app a failure touches gets a client (``AppClient``) holding the real
``faillite.client.routing.RouteCache`` and ``faillite.client.hedging.AppHedging``; its send loop
is ``faillite.client.failover.Client._send``'s, as callbacks: pick the first unmarked target
(none: wait for a newer table, a mark's expiry or the deadline), send with the attempt timeout
from the SLO, hedge to the next target after the adaptive delay within the budget, record each
outcome (``RouteCache.record``: a connection failure or timeout marks the node and is reported
to the controller as a suspicion), abandon an attempt whose target a new table demoted or whose
node got marked, and retry at once.

Two request streams per client, as in the failover benchmark: a probe (one request in flight,
back to back; MTTR is measured on it) and the open-loop workload (Poisson arrivals at the app's
rate, at most ``max_in_flight`` in flight, the rest dropped). A probe whose answers cannot change
(same target, nothing happened) is not simulated request by request: it idles after an answer,
and the request that would be in flight when something happens is started at its place on the
back-to-back lattice (``touch``), so the records that matter are exactly those of a probe
simulated in full.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from faillite.bench.load import RequestRecord
from faillite.client.exchange import probe_timeout
from faillite.client.hedging import AppHedging, HedgeConfig, attempt_timeout
from faillite.client.routing import Failure, RouteCache
from faillite.sim.agents import SimAgent
from faillite.sim.engine import Engine
from faillite.wire import RouteTable, RouteTarget

__all__ = ["AnswerExtra", "AppClient"]

Suspect = Callable[[RouteTarget, str], None]


class AnswerExtra:
    """Seconds an answer takes beyond the agent's time (scheduling, HTTP on a busy box): drawn
    from a measured distribution given as (quantile, ms) points, linear between them (none: 0).
    Without it every answer takes its p50 and the client hedges at 3 x p50, far earlier than a
    real client whose p99 is several times its p50 (``SimTiming.answer_extra_ms``)."""

    __slots__ = ("_ms", "_q", "_rng", "mean")

    def __init__(self, points: Sequence[tuple[float, float]], seed: int) -> None:
        pts = sorted(points)
        if pts and (pts[0][0] != 0.0 or pts[-1][0] != 1.0):
            raise ValueError("answer_extra_ms: the quantiles must run from 0 to 1")
        self._q, self._ms = [q for q, _ in pts], [ms for _, ms in pts]
        self._rng = random.Random(f"{seed}:answer-extra")  # str seeds hash alike in every process
        pairs = list(itertools.pairwise(pts))
        self.mean = sum((q1 - q0) * (a + b) / 2 for (q0, a), (q1, b) in pairs) / 1000  # seconds

    def draw(self) -> float:
        if not self._q:
            return 0.0
        u = self._rng.random()
        i = bisect.bisect_right(self._q, u) - 1
        if i >= len(self._q) - 1:
            return self._ms[-1] / 1000
        q0, q1 = self._q[i], self._q[i + 1]
        f = 0.0 if q1 == q0 else (u - q0) / (q1 - q0)
        return (self._ms[i] + f * (self._ms[i + 1] - self._ms[i])) / 1000


@dataclass
class _Attempt:
    target: RouteTarget
    rank: int
    sent: float
    at: float
    status: int | str | None  # 200 / 503 / 409, None: connection failure, "timeout"
    open: bool = True


class _Request:
    __slots__ = (
        "attempt",
        "client",
        "counted",
        "end",
        "full",
        "hedge",
        "hedge_at",
        "kind",
        "start",
        "wait_token",
        "waiting",
    )

    def __init__(self, client: AppClient, kind: str, start: float, deadline: float) -> None:
        self.client, self.kind, self.start, self.end = client, kind, start, start + deadline
        self.attempt: _Attempt | None = None
        self.hedge: _Attempt | None = None
        self.hedge_at: float | None = None  # when the attempt out now would be hedged
        self.full = 0.0  # its attempt timeout
        self.counted = False
        self.waiting = False
        self.wait_token = 0


class AppClient:
    def __init__(
        self,
        app: str,
        engine: Engine,
        agents: Mapping[str, SimAgent],
        suspect: Suspect,
        *,
        rate: float,
        seed: int,
        hedging: HedgeConfig | None = HedgeConfig(),  # noqa: B008 (frozen)
        cooldown: float = 1.0,
        probe_deadline: float = 5.0,
        work_deadline: float = 10.0,
        max_in_flight: int = 8,
        answer_extra_ms: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.app, self.engine, self.agents, self.suspect = app, engine, agents, suspect
        self.rate = rate
        self.cache = RouteCache(cooldown=cooldown)
        self.hedging = hedging
        self.state = AppHedging(hedging or HedgeConfig())
        self.probe_deadline, self.work_deadline, self.max_in_flight = (
            probe_deadline,
            work_deadline,
            max_in_flight,
        )
        self.rng = random.Random(seed)
        # the answers' tail: its own stream, so the workload's arrivals do not depend on it
        self.extra = AnswerExtra(answer_extra_ms, seed)
        self.probe_records: list[RequestRecord] = []
        self.work_records: list[RequestRecord] = []
        self.dropped = 0
        self._inflight: dict[_Request, None] = {}  # in sending order (a set's order is by address)
        self._work_inflight = 0
        self._probing = False
        self._idle: tuple[float, float] | None = None  # probe idle since (end, steady latency)
        self._work_until = -1.0

    # routes
    def apply(self, table: RouteTable) -> None:
        self.touch()
        if self.cache.table is not None and table.version <= self.cache.table.version:
            return
        self.cache.update(table)
        self._wake_all()

    def _slo(self) -> float | None:
        route = self.cache.route(self.app)
        return None if route is None else route.slo_ms

    # streams
    def start_probe(self) -> None:
        if not self._probing:
            self._probing = True
            self._new(self.engine.now, "probe")

    def stop_probe(self) -> None:
        self.touch()
        self._probing = False
        self._idle = None

    @property
    def probing(self) -> bool:
        return self._probing

    def run_workload(self, until: float) -> None:
        """Poisson arrivals at the app's rate from now until ``until`` (extends a running one)."""
        if self.rate <= 0:
            return
        running = self._work_until >= self.engine.now
        self._work_until = max(self._work_until, until)
        if not running:
            self.engine.after(self.rng.expovariate(self.rate), self._arrival)

    def end_workload(self, at: float) -> None:
        self._work_until = at

    def _arrival(self) -> None:
        now = self.engine.now
        if now > self._work_until:
            return
        if self._work_inflight >= self.max_in_flight:
            self.dropped += 1
        else:
            self._work_inflight += 1
            self._new(now, "work")
        self.engine.after(self.rng.expovariate(self.rate), self._arrival)

    def touch(self) -> None:
        """Something may change what the probe's next answer is: start the request that would be
        in flight now (on the back-to-back lattice since its last answer)."""
        if self._idle is None or not self._probing:
            return
        end, latency = self._idle
        self._idle = None
        now = self.engine.now
        skipped = int((now - end) / latency) if latency > 0 else 0
        for _ in range(min(skipped, self.state.config.window)):  # their answer times
            self.state.latency.record(latency + self.extra.draw())
        self.state.stats.requests += skipped
        self._new(min(end + skipped * latency, now), "probe")

    # the send loop
    def _new(self, start: float, kind: str) -> None:
        deadline = self.probe_deadline if kind == "probe" else self.work_deadline
        req = _Request(self, kind, start, deadline)
        self._inflight[req] = None
        self._send(req, start)

    def _send(self, req: _Request, now: float) -> None:
        req.waiting = False
        picked = self.cache.pick(self.app, now)
        if picked is None:
            known = self.cache.knows(self.app)
            if now >= req.end or known is False:
                self._finish(req, now, None, "the app has no target now")
                return
            retry_at = self.cache.retry_at(self.app, now) if known else None
            req.waiting = True
            req.wait_token += 1
            self.engine.at(min(req.end, retry_at or req.end), self._waited, req, req.wait_token)
            return
        rank, target = picked
        if not req.counted:
            req.counted = True
            self.state.stats.requests += 1
            self.state.budget.on_request(now)
        slo = self._slo()
        full = attempt_timeout(slo, self.state.config)
        timeout = min(full, req.end - now)
        if timeout <= 0:
            self._finish(req, now, None, "deadline")
            return
        req.attempt = a = self._attempt(target, rank, now, timeout)
        req.full, req.hedge_at = full, None
        self.engine.at(a.at, self._attempt_done, req, a, a.at)
        if self.hedging is not None and self.cache.pick(self.app, now, rank) is not None:
            req.hedge_at = now + self.state.delay(slo)
            if req.hedge_at < a.at:
                self.engine.at(req.hedge_at, self._hedge, req, a, full)

    def _attempt(self, target: RouteTarget, rank: int, now: float, timeout: float) -> _Attempt:
        agent = self.agents[target.node]
        answer = agent.attempt(target.model, target.epoch, now)
        at = answer.at
        if at is not None and answer.status == 200:
            at += self.extra.draw()
        if at is None or at > now + timeout:
            return _Attempt(target, rank, now, now + timeout, "timeout")
        return _Attempt(target, rank, now, at, answer.status)

    def _waited(self, req: _Request, token: int) -> None:
        if req.waiting and req.wait_token == token and req in self._inflight:
            self._send(req, self.engine.now)

    def _attempt_done(self, req: _Request, a: _Attempt, at: float) -> None:
        if not a.open or a.at != at or req.attempt is not a:
            return
        a.open = False
        now = self.engine.now
        if a.status == 200:
            self.state.latency.record(now - a.sent)
            self._finish(req, now, a.target, None)
            return
        self._failed(a, now)
        if req.hedge is not None and req.hedge.open:
            return  # the hedge's outcome decides
        self._send(req, now)

    def _failed(self, a: _Attempt, now: float) -> None:
        """Record a failed attempt; a node that gave no answer is reported and marked."""
        if isinstance(a.status, int):
            self.cache.record(self.app, a.target, a.status, now)
            return
        failure = Failure.TIMEOUT if a.status == "timeout" else Failure.CONNECTION
        self.cache.record(self.app, a.target, failure, now)
        self.suspect(a.target, f"{failure.value} to {a.target.node}")
        self._wake_all()

    def _hedge(self, req: _Request, a: _Attempt, full: float) -> None:
        if not a.open or req.attempt is not a or req.hedge is not None:
            return
        now = self.engine.now
        picked = self.cache.pick(self.app, now, a.rank)
        if picked is None:
            return
        if not self.state.budget.try_spend(now):
            self.state.stats.hedges_refused += 1
            return
        self.state.stats.hedges_sent += 1
        rank, target = picked
        req.hedge = h = self._attempt(target, rank, now, min(full, req.end - now))
        self.engine.at(h.at, self._hedge_done, req, h, h.at, self.state.delay(self._slo()), full)

    def _hedge_done(self, req: _Request, h: _Attempt, at: float, delay: float, full: float) -> None:
        if not h.open or h.at != at or req.hedge is not h:
            return
        h.open = False
        now = self.engine.now
        primary = req.attempt
        if h.status == 200:
            self.state.stats.hedges_won += 1
            if primary is not None and primary.open:
                primary.open = False
                # the loser gets a health check: no answer within the probe timeout marks its node
                check = self._attempt(primary.target, primary.rank, now, probe_timeout(delay, full))
                if check.status != 200 and check.status not in (409, 503):
                    self.engine.at(check.at, self._check_failed, check)
            self._finish(req, now, h.target, None)
            return
        self._failed(h, now)
        if primary is None or not primary.open:
            self._send(req, now)

    def _check_failed(self, check: _Attempt) -> None:
        self.state.stats.suspected += 1
        self._failed(check, self.engine.now)

    def _wake_all(self) -> None:
        """A new table or a marked node: waiting requests look again; attempts to a demoted or
        marked target are abandoned and retried (after their hedge, if one is out)."""
        now = self.engine.now
        for req in list(self._inflight):
            if req.waiting:
                self._send(req, now)
                continue
            a = req.attempt
            if a is None or not a.open:
                continue
            if self.cache.demoted(self.app, a.target, a.rank) or self.cache.is_marked(
                self.app, a.target, now
            ):
                a.open = False
                if req.hedge is None or not req.hedge.open:
                    self._send(req, now)

    def node_fault(self, node: str, crashed: bool) -> None:
        """``node`` just crashed or hung: attempts in flight to it that have not been answered
        yet end with the connection's reset (a crash), or never (a hang: their timeout)."""
        now = self.engine.now
        for req in list(self._inflight):
            for a, is_hedge in ((req.attempt, False), (req.hedge, True)):
                if a is None or not a.open or a.target.node != node or a.at <= now:
                    continue
                if crashed:
                    end = self.agents[node].attempt(a.target.model, a.target.epoch, now).at
                    a.at, a.status = max(end or now, now), None
                elif a.status != "timeout":
                    a.at, a.status = (
                        max(a.sent + attempt_timeout(self._slo(), self.state.config), now),
                        "timeout",
                    )
                else:
                    continue
                if not is_hedge:
                    self.engine.at(a.at, self._attempt_done, req, a, a.at)
                    if req.hedge is None and req.hedge_at is not None and req.hedge_at < a.at:
                        self.engine.at(max(req.hedge_at, now), self._hedge, req, a, req.full)
                else:
                    delay = self.state.delay(self._slo())
                    full = attempt_timeout(self._slo(), self.state.config)
                    self.engine.at(a.at, self._hedge_done, req, a, a.at, delay, full)

    def _finish(self, req: _Request, now: float, target: RouteTarget | None, error: str | None) -> None:
        self._inflight.pop(req, None)
        if target is None:
            record = RequestRecord(self.app, req.start, now, False, error=error)
        else:
            record = RequestRecord(self.app, req.start, now, True, target.node, target.model, target.accuracy)
        if req.kind == "work":
            self._work_inflight -= 1
            self.work_records.append(record)
            return
        self.probe_records.append(record)
        if not self._probing:
            return
        if target is None:
            self._new(now, "probe")
            return
        # the same target would answer the same way until something happens (``touch``)
        self._idle = (now, self.agents[target.node].steady_latency(target.model) + self.extra.mean)
        retry_at = self.cache.retry_at(self.app, now)
        if retry_at is not None:  # a mark's expiry may send the next request elsewhere
            self.engine.at(retry_at, self.touch)
