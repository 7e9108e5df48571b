"""One round of a request's send loop: the attempt at the chosen target, and its hedge.

The common path costs what a bare ``await send(...)`` costs plus one timer handle: the attempt
runs *inline* in the caller's task (no task, no future, no ``asyncio.wait``), inside a
``_Scope`` that whatever must end it early interrupts by cancelling the caller's task (the way
``asyncio.timeout`` does, telling its own cancellation from the caller's with ``uncancel``):

- the hedge timer fires with the attempt still out, a fallback not marked and the budget willing:
  the same request goes to the fallback as a task; if that answers first, the attempt is
  interrupted and the hedge's answer returned (a hedge that fails leaves the attempt running);
- a new table demotes the target, or its node gets marked failed (``Exchange.wake_all``): the
  attempt is abandoned (a hedge still out is then waited for, abandonable the same way).

A primary that lost to a hedge gets a health check, in the background (one per node at a time:
the hedges that win while one is out start none), bounded by ``probe_timeout``: any HTTP answer
says it is alive, just slow; none marks its node (as a timeout does), frees every request in
flight to it and reports it to the controller, so the next requests go straight to the fallback
instead of hedging each time.

Connection error, 409/503 (and 502/504), timeout: recorded (``RouteCache.record``) and handed
back to the send loop (after the hedge, if one is out), which goes on to the next target at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from faillite.client.hedging import AppHedging
from faillite.client.http1 import ConnectionPool
from faillite.client.oip import OipConnectionError, OipTimeout, error_from_response, send
from faillite.client.results import RawResponse
from faillite.client.routing import Decision, Failure, RouteCache
from faillite.wire import EPOCH_HEADER, RouteTarget

__all__ = ["Exchange", "probe_timeout"]

log = logging.getLogger("faillite.client")

_Answer = tuple[int, Mapping[str, str], bytes]
_Settled = tuple[RawResponse | None, str | None]  # the answer to give, or why there is none
_HEDGE_WON = "a hedge answered first"
# A health check's floor. The check marks the node for every app (for the failure cooldown), so
# a scheduling hiccup must not reach it: 20 ms is more than one whole CFS scheduling period on a
# 2-core box (sched_latency = 6 ms x (1 + log2 CPUs) = 12 ms), so a runnable agent on a
# saturated box still gets the CPU and answers within it, while a stopped one never does.
_MIN_PROBE_S = 0.020
_PROBE_DELAYS = 4  # ... and 4 hedge delays: the hedge delay is already >= the app's p99


def probe_timeout(hedge_delay: float, attempt_timeout: float) -> float:
    """Seconds a primary that lost to a hedge has to answer a health check before its node is
    marked: ``max(4 x hedge delay, 20 ms)``, never longer than an attempt may take."""
    return min(attempt_timeout, max(_PROBE_DELAYS * hedge_delay, _MIN_PROBE_S))


class _Hedge:
    __slots__ = ("cut_short", "rank", "settled", "target", "task")

    def __init__(self, target: RouteTarget, rank: int, task: asyncio.Task[_Answer], cut_short: bool) -> None:
        self.target, self.rank, self.task, self.cut_short = target, rank, task, cut_short
        self.settled: _Settled | None = None


class _Scope:
    """An attempt awaited inline by ``task``, and what may interrupt it."""

    __slots__ = ("app", "hedge", "open", "rank", "reason", "target", "task", "timer")

    def __init__(self, app: str, target: RouteTarget, rank: int, task: asyncio.Task[object]) -> None:
        self.app, self.target, self.rank, self.task = app, target, rank, task
        self.open = True
        self.reason: str | None = None
        self.hedge: _Hedge | None = None
        self.timer: asyncio.TimerHandle | None = None

    def interrupt(self, reason: str) -> None:
        if self.open and self.reason is None:
            self.reason = reason
            self.task.cancel()


class Exchange:
    """The attempts of one client: what it needs of the client is passed in, not reached for."""

    def __init__(
        self,
        cache: RouteCache,
        pool: ConnectionPool,
        session: Callable[[], aiohttp.ClientSession | None],
        report: Callable[[RouteTarget, str, float], None],
    ) -> None:
        self._cache = cache  # routes, marks and the verdict on each answer
        self._pool = pool  # the lean data path (plain http:// targets)
        self._session = session  # the aiohttp session, for anything else (None before start)
        self._report = report  # tells the controller a node looks gone (in the background)
        self._scopes: set[_Scope] = set()  # attempts awaited now
        self._tasks: set[asyncio.Task[object]] = set()  # hedges and health checks in flight
        self._probing: set[str] = set()  # nodes with a health check out

    def wake_all(self) -> None:
        """Abandon the attempts whose target a new table demoted or whose node is now marked."""
        if not self._scopes:
            return
        cache = self._cache
        now = asyncio.get_running_loop().time()
        for scope in list(self._scopes):
            if cache.demoted(scope.app, scope.target, scope.rank) or cache.is_marked(
                scope.app, scope.target, now
            ):
                scope.interrupt(f"{scope.target.node}: abandoned in flight, route table v{cache.version}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run(
        self,
        app: str,
        state: AppHedging,
        picked: tuple[int, RouteTarget],
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
        full_timeout: float,
        hedge_at: float | None,
        end: float,
    ) -> tuple[RawResponse | None, int, str | None]:
        """(the answer or None, attempts started, the last error when there is no answer)."""
        assert self._session() is not None, "Client.start() not called"
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        rank, target = picked
        scope = _Scope(app, target, rank, task)
        started = loop.time()
        if hedge_at is not None:
            hedge = functools.partial(self._hedge, scope, state, suffix, body, headers, full_timeout, end)
            scope.timer = loop.call_at(hedge_at, hedge)
        self._scopes.add(scope)
        cancelling = task.cancelling()
        outcome: _Answer | Exception | None
        try:
            outcome = await self._send(target, suffix, body, headers, timeout)
        except asyncio.CancelledError:
            if scope.reason is None or task.uncancel() > cancelling:  # the caller was cancelled
                if scope.hedge is not None:
                    scope.hedge.task.cancel()
                raise
            outcome = None  # interrupted: scope.reason says why
        except (OipConnectionError, OipTimeout) as exc:
            outcome = exc
        else:
            if scope.reason is not None:  # interrupted as it finished, and the cancellation lost
                task.uncancel()
        finally:
            scope.open = False
            self._scopes.discard(scope)
            if scope.timer is not None:
                scope.timer.cancel()
        now = loop.time()
        hedge_ = scope.hedge
        sent = 1 if hedge_ is None else 2
        if outcome is None:
            if scope.reason == _HEDGE_WON and hedge_ is not None and hedge_.settled is not None:
                state.stats.hedges_won += 1
                assert hedge_at is not None
                self._check_loser(app, state, target, probe_timeout(hedge_at - started, full_timeout))
                return hedge_.settled[0], sent, None
            last_error = scope.reason
        else:
            answer, last_error = self._settle(app, target, outcome, timeout < full_timeout, now)
            if answer is not None:
                state.latency.record(now - started)
                if hedge_ is not None:
                    hedge_.task.cancel()
                return answer, sent, None
        if hedge_ is None:
            return None, sent, last_error
        answer, error = await self._wait(app, hedge_)  # the attempt failed: the hedge may not
        if answer is not None:
            state.stats.hedges_won += 1
        return answer, sent, error or last_error

    def _send(
        self,
        target: RouteTarget,
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Awaitable[_Answer]:
        """One exchange with ``target``: on the lean keep-alive pool (``http1``) for plain
        http:// targets, else on the aiohttp session."""
        method = "GET" if body is None else "POST"
        url = f"{target.url.rstrip('/')}/v2/models/{target.model}{suffix}"
        headers = {**headers, EPOCH_HEADER: str(target.epoch)}
        pool = self._pool
        if pool.supports(url):
            return pool.request(method, url, body=body, headers=headers, timeout=timeout)
        session = self._session()
        assert session is not None, "Client.start() not called"
        return send(session, method, url, body=body, headers=headers, timeout=timeout)

    def _hedge(
        self,
        scope: _Scope,
        state: AppHedging,
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        full_timeout: float,
        end: float,
    ) -> None:
        """The hedge timer: send the request to the first unmarked fallback too, budget permitting."""
        scope.timer = None
        if not scope.open:
            return
        session = self._session()
        loop = asyncio.get_running_loop()
        now = loop.time()
        fallback = self._cache.pick(scope.app, now, scope.rank)
        timeout = min(full_timeout, end - now)
        if fallback is None or timeout <= 0 or session is None:
            return
        if not state.budget.try_spend(now):
            state.stats.hedges_refused += 1
            return
        state.stats.hedges_sent += 1
        rank, target = fallback
        log.debug("app %s: hedging %s -> %s", scope.app, scope.target.node, target.node)
        task = loop.create_task(self._send(target, suffix, body, headers, timeout))
        hedge = scope.hedge = _Hedge(target, rank, task, timeout < full_timeout)
        self._tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(functools.partial(self._hedge_done, scope, hedge))

    def _hedge_done(self, scope: _Scope, hedge: _Hedge, task: asyncio.Task[_Answer]) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if task.cancelled():
            return
        try:
            answer = self._settle_hedge(scope.app, hedge)[0]
        except Exception:  # not a failure to reach the target: a bug, raised to the caller by _wait
            log.exception("app %s: the hedge to %s failed", scope.app, hedge.target.node)
            return
        if answer is not None:
            scope.interrupt(_HEDGE_WON)

    def _settle_hedge(self, app: str, hedge: _Hedge) -> _Settled:
        if hedge.settled is None:
            try:
                outcome: _Answer | Exception = hedge.task.result()
            except (OipConnectionError, OipTimeout) as exc:
                outcome = exc
            now = asyncio.get_running_loop().time()
            hedge.settled = self._settle(app, hedge.target, outcome, hedge.cut_short, now)
        return hedge.settled

    async def _wait(self, app: str, hedge: _Hedge) -> _Settled:
        """Wait for a hedge still out (the attempt it hedged failed), abandonable like an attempt."""
        if hedge.task.done() and not hedge.task.cancelled():
            return self._settle_hedge(app, hedge)
        task = asyncio.current_task()
        assert task is not None
        scope = _Scope(app, hedge.target, hedge.rank, task)
        self._scopes.add(scope)
        cancelling = task.cancelling()
        try:
            await hedge.task
        except asyncio.CancelledError:
            hedge.task.cancel()
            if scope.reason is None or task.uncancel() > cancelling:
                raise
            return None, scope.reason
        except (OipConnectionError, OipTimeout):
            pass  # settled below
        finally:
            scope.open = False
            self._scopes.discard(scope)
        return self._settle_hedge(app, hedge)

    def _settle(
        self, app: str, target: RouteTarget, outcome: _Answer | Exception, cut_short: bool, now: float
    ) -> _Settled:
        """Classify a finished attempt: the answer to give, or why there is none (recorded)."""
        if isinstance(outcome, OipConnectionError):
            return None, self._failed(app, target, Failure.CONNECTION, str(outcome), now)
        if isinstance(outcome, OipTimeout):
            if cut_short:  # cut short by the deadline: says nothing of the node
                return None, str(outcome)
            return None, self._failed(app, target, Failure.TIMEOUT, str(outcome), now)
        assert not isinstance(outcome, Exception)
        status, headers, body = outcome
        decision = self._cache.record(app, target, status, now)
        if decision in (Decision.OK, Decision.REFUSED):
            return RawResponse(status, headers, body, target), None
        error = f"{target.node}: HTTP {status}: {error_from_response(status, body).message}"
        log.info("app %s: %s on %s (%s); failing over", app, decision.value, target.node, error)
        return None, error

    def _failed(self, app: str, target: RouteTarget, failure: Failure, error: str, now: float) -> str:
        """No HTTP answer: mark the node, free requests in flight to it, tell the controller."""
        decision = self._cache.record(app, target, failure, now)
        log.info("app %s: %s on %s (%s); failing over", app, decision.value, target.node, error)
        self._report(target, f"{decision.value}: {error}", now)
        self.wake_all()
        return error

    def _check_loser(self, app: str, state: AppHedging, target: RouteTarget, grace: float) -> None:
        """A primary lost to a hedge: a health check within ``grace`` tells slow from hung (none
        when one is already out to that node: its answer covers this loss too)."""
        if target.node in self._probing:
            return
        self._probing.add(target.node)
        task = asyncio.get_running_loop().create_task(self._probe(app, state, target, grace))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._probe_done, target.node))

    @property
    def probing(self) -> frozenset[str]:
        """The nodes a health check is out to now."""
        return frozenset(self._probing)

    def _probe_done(self, node: str, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        self._probing.discard(node)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("checking a node that lost to a hedge failed", exc_info=exc)

    async def _probe(self, app: str, state: AppHedging, target: RouteTarget, grace: float) -> None:
        session = self._session()
        if session is None:
            return
        url = f"{target.url.rstrip('/')}/v2/health/live"
        pool = self._pool
        try:
            if pool.supports(url):
                await pool.request("GET", url, timeout=grace)
            else:
                await send(session, "GET", url, timeout=grace)
            return  # any answer: alive, only slow
        except OipTimeout:
            failure = Failure.TIMEOUT
        except OipConnectionError:
            failure = Failure.CONNECTION
        now = asyncio.get_running_loop().time()
        if self._cache.is_marked(app, target, now):
            return  # another request got there first
        state.stats.suspected += 1
        reason = f"a hedge answered first and a health check got no answer within {grace * 1000:.0f} ms"
        self._failed(app, target, failure, reason, now)
