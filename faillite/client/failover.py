"""The failover client: a route cache kept fresh by the controller, and a send loop that fails over.

The client holds every app's route (primary target plus warm fallbacks) *before* a failure, so
a warm failover costs no controller round trip: on a connection error, a 503, a stale epoch
(409) or a timeout the request is retried at once on the next target. A primary that has not
answered after the app's adaptive hedge delay gets the request sent to the first warm fallback
too (a *hedge*, within a budget), and the first answer wins: a hung node costs a request a few
of its usual latencies, not a timeout. A node that could not be reached (connection error,
timeout, no answer a grace after losing to a hedge) is marked for every app, frees the requests
in flight to it, and is reported to the controller in the background; a 409 or 503 came from a
live node the controller already knows about, so it is not reported. The decisions are
``faillite.client.routing``'s and ``faillite.client.hedging``'s (pure); this module only sends,
waits and watches (an attempt and its hedge are ``faillite.client.exchange``).

Every hop has an explicit timeout: the attempt timeout (from the app's SLO, or
``request_timeout``), ``deadline`` per request (all attempts and waits together),
``control_timeout`` per controller call. The data plane never waits on the controller: when it
is down the cache keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp
import numpy as np
from pydantic import ValidationError

from faillite.client.exchange import Exchange
from faillite.client.hedging import AppHedging, HedgeConfig, HedgeStats, attempt_timeout
from faillite.client.http1 import ConnectionPool
from faillite.client.oip import (
    OipConnectionError,
    OipTimeout,
    decode_infer_response,
    encode_infer_request,
    error_from_response,
    send,
)
from faillite.client.results import (
    ControllerError,
    FailoverError,
    InferResult,
    RawResponse,
    Unavailable,
    UnknownApp,
)
from faillite.client.routing import RouteCache, Update
from faillite.client.suspect import SuspicionReporter
from faillite.client.watch import RouteWatch
from faillite.wire import RouteTable, RouteTarget

__all__ = [
    "Client",
    "ControllerError",
    "FailoverError",
    "HedgeConfig",
    "HedgeStats",
    "InferResult",
    "RawResponse",
    "Unavailable",
    "UnknownApp",
]

log = logging.getLogger("faillite.client")

_INFER_HEADER = "Inference-Header-Content-Length"


class Client:
    """Failover client for the apps in a controller's route table (or in a static table).

    ``request_timeout`` (seconds per attempt) overrides the timeout derived from each app's SLO;
    ``hedging=None`` turns hedged requests off.
    """

    def __init__(
        self,
        controller_url: str | None,
        *,
        token: str | None = None,
        request_timeout: float | None = None,
        deadline: float = 5.0,
        session: aiohttp.ClientSession | None = None,
        control_timeout: float = 1.0,
        failure_cooldown: float = 1.0,
        hedging: HedgeConfig | None = HedgeConfig(),  # noqa: B008 (frozen: shared safely)
    ) -> None:
        self.controller_url = controller_url.rstrip("/") if controller_url else None
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.control_timeout = control_timeout
        self.hedging = hedging
        self._policy = hedging or HedgeConfig()  # timeouts from SLOs even without hedging
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = session
        self._owns_session = session is None
        self._pool = ConnectionPool()  # the data path to the agents (see faillite.client.http1)
        self._cache = RouteCache(cooldown=failure_cooldown)
        self._changed = asyncio.Event()  # replaced on every applied table: one event per version
        self._watch: RouteWatch | None = None
        self._apps: dict[str, AppHedging] = {}
        self._exchange = Exchange(self._cache, self._pool, lambda: self._session, self._report)
        self._suspicions = (
            None
            if self.controller_url is None
            else SuspicionReporter(
                self.controller_url, lambda: self._session, self._auth, control_timeout, failure_cooldown
            )
        )

    @classmethod
    def from_table(cls, table: RouteTable, **options: object) -> Client:
        """A client with fixed routes and no controller (controller-less deployments)."""
        client = cls(None, **options)  # type: ignore[arg-type]
        client._cache.update(table)
        return client

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Fetch the routes once, then watch for changes. A controller that cannot be reached is
        not an error (the watch keeps retrying); one that refuses the client is."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
        if self.controller_url is None or self._watch is not None:
            return
        try:
            status, _, body = await send(
                self._session,
                "GET",
                f"{self.controller_url}/v1/routes",
                headers=self._auth,
                timeout=self.control_timeout,
            )
        except (OipConnectionError, OipTimeout) as exc:
            log.warning("controller not reachable yet (%s); watching for routes", exc)
        else:
            if status in (401, 403):
                raise ControllerError(
                    f"controller refused GET /v1/routes: {error_from_response(status, body)}"
                )
            if status == 200:
                try:
                    self.apply(RouteTable.model_validate_json(body))
                except ValidationError as exc:  # the watch sends a full table on connect anyway
                    log.warning("GET /v1/routes: ignoring a malformed table: %s", exc.errors()[:1])
            else:
                log.warning("GET /v1/routes answered %d; watching for routes", status)
        self._watch = RouteWatch(
            self._session,
            f"{self.controller_url}/v1/routes/watch",
            self._auth,
            self.control_timeout,
            self.apply,
        )
        self._watch.start()

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None
        await self._exchange.close()
        await self._pool.close()
        if self._suspicions is not None:
            await self._suspicions.close()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- routes ---------------------------------------------------------------------------

    def apply(self, table: RouteTable) -> bool:
        """Take a route table (from the controller's watch); False when not newer than ours."""
        if self._cache.update(table) is Update.STALE:
            return False
        self._changed.set()  # wakes requests waiting for a target
        self._changed = asyncio.Event()
        self._exchange.wake_all()  # requests in flight check whether their target was demoted
        return True

    @property
    def routes(self) -> RouteTable | None:
        return self._cache.table

    @property
    def watching(self) -> bool:
        """Whether the route watch is connected to the controller now."""
        return self._watch is not None and self._watch.connected

    def knows(self, app: str) -> bool | None:
        """Whether the routes list ``app`` (None: no route table yet)."""
        return self._cache.knows(app)

    def current_target(self, app: str) -> RouteTarget | None:
        """Where ``app``'s next request would go now (None: nowhere yet)."""
        return self._cache.next_target(app, asyncio.get_running_loop().time())

    def attempt_timeout(self, app: str) -> float:
        """Seconds one attempt of ``app`` may take: ``request_timeout``, else from the app's SLO."""
        if self.request_timeout is not None:
            return self.request_timeout
        route = self._cache.route(app)
        return attempt_timeout(None if route is None else route.slo_ms, self._policy)

    def hedge_delay(self, app: str) -> float | None:
        """Seconds ``app``'s next request would wait before hedging (None: hedging is off)."""
        if self.hedging is None:
            return None
        route = self._cache.route(app)
        state = self._apps.get(app)
        slo_ms = None if route is None else route.slo_ms
        return (state or AppHedging(self.hedging)).delay(slo_ms)

    @property
    def stats(self) -> Mapping[str, HedgeStats]:
        """Per app: requests and hedges (sent, won, refused by the budget, primaries suspected)."""
        return {app: state.stats for app, state in self._apps.items()}

    def total_stats(self) -> HedgeStats:
        total = HedgeStats()
        for state in self._apps.values():
            total.add(state.stats)
        return total

    # -- requests -------------------------------------------------------------------------

    async def infer(
        self,
        app: str,
        inputs: Mapping[str, np.ndarray],
        outputs: list[str] | None = None,
        deadline: float | None = None,
    ) -> dict[str, np.ndarray]:
        return (await self.infer_detailed(app, inputs, outputs, deadline)).outputs

    async def infer_detailed(
        self,
        app: str,
        inputs: Mapping[str, np.ndarray],
        outputs: list[str] | None = None,
        deadline: float | None = None,
    ) -> InferResult:
        """Run one inference on ``app``; raises ``OipError`` if refused, ``Unavailable`` if no
        target answered within ``deadline`` seconds, ``UnknownApp``."""
        body, headers = encode_infer_request(inputs, outputs, binary=True)
        response, attempts = await self._send(app, "/infer", body, headers, deadline)
        if response.status >= 400:
            raise error_from_response(response.status, response.body)
        outputs_ = decode_infer_response(response.body, response.headers.get(_INFER_HEADER))
        return InferResult(outputs_, response.target, attempts)

    async def infer_raw(
        self, app: str, body: bytes, headers: Mapping[str, str], deadline: float | None = None
    ) -> RawResponse:
        """Forward an OIP infer request body verbatim (it does not name the model, so it fits any
        target); a refusal comes back as the agent's status and body, not raised."""
        response, _ = await self._send(app, "/infer", body, headers, deadline)
        return response

    async def metadata_raw(self, app: str, deadline: float | None = None) -> RawResponse:
        """``GET /v2/models/{model}`` of the target now serving ``app``."""
        response, _ = await self._send(app, "", None, {}, deadline)
        return response

    async def _send(
        self,
        app: str,
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        deadline: float | None,
    ) -> tuple[RawResponse, int]:
        loop = asyncio.get_running_loop()
        started = now = loop.time()
        end = started + (self.deadline if deadline is None else deadline)
        attempts, last_error = 0, None
        state: AppHedging | None = None
        while True:
            changed = self._changed  # taken before reading the cache: no lost wake-up
            route = self._cache.route(app)
            picked = None if route is None else self._cache.pick(app, now)
            if picked is None:
                known = self._cache.knows(app)
                if known is False:
                    raise UnknownApp(app)
                if now >= end:
                    raise Unavailable(app, (now - started) * 1000, last_error or _why_none(known))
                retry_at = self._cache.retry_at(app, now) if known else None
                await _wait(changed, min(end, retry_at or end) - now)
                now = loop.time()
                continue
            assert route is not None
            if state is None:  # counted once the app is known: no stats for unknown names
                state = self._apps.get(app) or self._new_app(app)
                state.stats.requests += 1
                state.budget.on_request(now)
            full = self.attempt_timeout(app)
            timeout = min(full, end - now)
            if timeout <= 0:
                raise Unavailable(app, (now - started) * 1000, last_error)
            hedge_at = None
            if self.hedging is not None and self._cache.pick(app, now, picked[0]) is not None:
                hedge_at = now + state.delay(route.slo_ms)
            answer, sent, error = await self._exchange.run(
                app, state, picked, suffix, body, headers, timeout, full, hedge_at, end
            )
            attempts += sent
            if answer is not None:
                return answer, attempts
            last_error = error or last_error
            now = loop.time()

    def _new_app(self, app: str) -> AppHedging:
        state = self._apps[app] = AppHedging(self._policy)
        return state

    def _report(self, target: RouteTarget, reason: str, now: float) -> None:
        if self._suspicions is not None:
            self._suspicions.report(target, reason, now)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


def _why_none(known: bool | None) -> str:
    return "no route table from the controller yet" if known is None else "the app has no target now"
