"""The failover client: a route cache kept fresh by the controller, and a send loop that fails over.

The client holds every app's route (primary target plus warm fallbacks) *before* a failure, so
a warm failover costs no controller round trip: on a connection error, a 503, a stale epoch
(409) or a timeout the request is retried at once on the next target. A node that could not be
reached (connection error, timeout) is reported to the controller in the background; a 409 or
503 came from a live node the controller already knows about, so it is not reported. The
decisions are ``faillite.client.routing``'s (pure); this module only sends, waits and watches.

Every hop has an explicit timeout: ``request_timeout`` per attempt at a target, ``deadline``
per request (all attempts and waits together), ``control_timeout`` per controller call. The
data plane never waits on the controller: when it is down the cache keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import aiohttp
import numpy as np
from pydantic import ValidationError

from faillite.client.oip import (
    OipConnectionError,
    OipTimeout,
    decode_infer_response,
    encode_infer_request,
    error_from_response,
    send,
)
from faillite.client.routing import Decision, Failure, RouteCache, Update
from faillite.client.watch import RouteWatch
from faillite.wire import EPOCH_HEADER, RouteTable, RouteTarget

__all__ = [
    "Client",
    "ControllerError",
    "FailoverError",
    "InferResult",
    "RawResponse",
    "Unavailable",
    "UnknownApp",
]

log = logging.getLogger("faillite.client")

_INFER_HEADER = "Inference-Header-Content-Length"


class FailoverError(Exception):
    """Base of the failover client's own errors (refusals stay ``OipError``)."""


class UnknownApp(FailoverError):
    def __init__(self, app: str) -> None:
        super().__init__(f"unknown app {app!r}: the route table does not list it")
        self.app = app


class Unavailable(FailoverError):
    """No target of the app answered within the request's deadline."""

    def __init__(self, app: str, waited_ms: float, last_error: str | None) -> None:
        super().__init__(
            f"app {app!r} unavailable: no target answered within {waited_ms:.0f} ms"
            f" (last error: {last_error or 'none'})"
        )
        self.app = app
        self.waited_ms = waited_ms
        self.last_error = last_error


class ControllerError(FailoverError):
    """The controller refused the client (e.g. a wrong token): a configuration error."""


class RawResponse(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes
    target: RouteTarget  # the target that answered


@dataclass(frozen=True)
class InferResult:
    outputs: dict[str, np.ndarray]
    target: RouteTarget  # which node and variant answered (accuracy, role)
    attempts: int  # targets tried, 1 when the first answered


class _Abandoned(NamedTuple):
    reason: str


class Client:
    """Failover client for the apps in a controller's route table (or in a static table)."""

    def __init__(
        self,
        controller_url: str | None,
        *,
        token: str | None = None,
        request_timeout: float = 0.5,
        deadline: float = 5.0,
        session: aiohttp.ClientSession | None = None,
        control_timeout: float = 1.0,
        failure_cooldown: float = 1.0,
    ) -> None:
        self.controller_url = controller_url.rstrip("/") if controller_url else None
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.control_timeout = control_timeout
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = session
        self._owns_session = session is None
        self._cache = RouteCache(cooldown=failure_cooldown)
        self._changed = asyncio.Event()  # replaced on every applied table: one event per version
        self._watch: RouteWatch | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._reported: dict[tuple[str, int], float] = {}

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
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- routes ---------------------------------------------------------------------------

    def apply(self, table: RouteTable) -> bool:
        """Take a route table (from the controller's watch); False when not newer than ours."""
        if self._cache.update(table) is Update.STALE:
            return False
        self._changed.set()  # wakes waiting requests and lets in-flight ones check their target
        self._changed = asyncio.Event()
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
        response, attempts = await self._send(app, "POST", "/infer", body, headers, deadline)
        if response.status >= 400:
            raise error_from_response(response.status, response.body)
        outputs_ = decode_infer_response(response.body, response.headers.get(_INFER_HEADER))
        return InferResult(outputs_, response.target, attempts)

    async def infer_raw(
        self, app: str, body: bytes, headers: Mapping[str, str], deadline: float | None = None
    ) -> RawResponse:
        """Forward an OIP infer request body verbatim (it does not name the model, so it fits any
        target); a refusal comes back as the agent's status and body, not raised."""
        response, _ = await self._send(app, "POST", "/infer", body, headers, deadline)
        return response

    async def metadata_raw(self, app: str, deadline: float | None = None) -> RawResponse:
        """``GET /v2/models/{model}`` of the target now serving ``app``."""
        response, _ = await self._send(app, "GET", "", None, {}, deadline)
        return response

    async def _send(
        self,
        app: str,
        method: str,
        suffix: str,
        body: bytes | None,
        headers: Mapping[str, str],
        deadline: float | None,
    ) -> tuple[RawResponse, int]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        end = started + (self.deadline if deadline is None else deadline)
        attempts, last_error = 0, None
        while True:
            now = loop.time()
            changed = self._changed  # taken before reading the cache: no lost wake-up
            known = self._cache.knows(app)
            if known is False:
                raise UnknownApp(app)
            target = self._cache.next_target(app, now) if known else None
            if target is None:
                if now >= end:
                    raise Unavailable(app, (now - started) * 1000, last_error or _why_none(known))
                retry_at = self._cache.retry_at(app, now) if known else None
                await _wait(changed, min(end, retry_at or end) - now)
                continue
            timeout = min(self.request_timeout, end - now)
            if timeout <= 0:
                raise Unavailable(app, (now - started) * 1000, last_error)
            attempts += 1
            rank = self._cache.rank(app, target) or 0
            url = f"{target.url.rstrip('/')}/v2/models/{target.model}{suffix}"
            stamped = {**headers, EPOCH_HEADER: str(target.epoch)}
            try:
                result = await self._attempt(app, target, rank, changed, method, url, body, stamped, timeout)
            except OipConnectionError as exc:
                outcome: int | Failure = Failure.CONNECTION
                last_error = str(exc)
            except OipTimeout as exc:
                last_error = str(exc)
                if timeout < self.request_timeout:  # cut short by the deadline: says nothing of the node
                    continue
                outcome = Failure.TIMEOUT
            else:
                if isinstance(result, _Abandoned):
                    last_error = result.reason
                    continue
                outcome = result[0]
            decision = self._cache.record(app, target, outcome, loop.time())
            if decision in (Decision.OK, Decision.REFUSED):  # only an HTTP answer is either
                status, resp_headers, resp_body = result
                return RawResponse(status, resp_headers, resp_body, target), attempts
            if isinstance(outcome, int):
                last_error = (
                    f"{target.node}: HTTP {outcome}: {error_from_response(outcome, result[2]).message}"
                )
            log.info("app %s: %s on %s (%s); failing over", app, decision.value, target.node, last_error)
            if isinstance(outcome, Failure):  # the node may be gone; a 409 or 503 came from a live one
                self._report(target, f"{decision.value}: {last_error}", loop.time())

    async def _attempt(
        self,
        app: str,
        target: RouteTarget,
        rank: int,
        changed: asyncio.Event,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> tuple[int, Mapping[str, str], bytes] | _Abandoned:
        """One exchange with a target, given up early if a new table demotes the target."""
        assert self._session is not None, "Client.start() not called"
        request = asyncio.ensure_future(
            send(self._session, method, url, body=body, headers=headers, timeout=timeout)
        )
        try:
            while True:
                waiter = asyncio.ensure_future(changed.wait())
                try:
                    await asyncio.wait({request, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if request.done():
                    return request.result()
                changed = self._changed
                if self._cache.demoted(app, target, rank):
                    return _Abandoned(
                        f"{target.node}: abandoned in flight, route table v{self._cache.version}"
                    )
        finally:
            if not request.done():
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)

    # -- suspicions -----------------------------------------------------------------------

    def _report(self, target: RouteTarget, reason: str, now: float) -> None:
        """Tell the controller, in the background and at most once per node and cooldown."""
        if self.controller_url is None or self._session is None:
            return
        key = (target.node, target.epoch)
        if self._reported.get(key, float("-inf")) > now:
            return
        self._reported[key] = now + self._cache.cooldown
        task = asyncio.get_running_loop().create_task(self._post_suspect(target, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_suspect(self, target: RouteTarget, reason: str) -> None:
        assert self._session is not None and self.controller_url is not None
        payload = json.dumps({"node": target.node, "epoch": target.epoch, "reason": reason}).encode()
        try:
            status, _, _ = await send(
                self._session,
                "POST",
                f"{self.controller_url}/v1/suspect",
                body=payload,
                headers={**self._auth, "Content-Type": "application/json"},
                timeout=self.control_timeout,
            )
        except (OipConnectionError, OipTimeout) as exc:  # the controller may be down: that is fine
            log.debug("suspicion about %s not delivered: %s", target.node, exc)
            return
        if status >= 300:
            log.debug("controller answered %d to a suspicion about %s", status, target.node)


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
