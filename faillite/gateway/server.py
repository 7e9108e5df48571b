"""The gateway process: the Open Inference Protocol per *app name*, in front of the failover client.

A stock OIP client (tritonclient, KServe's) asks for model ``cam``; the gateway forwards the
request body verbatim to the target now serving app ``cam`` (``target.url/v2/models/
{target.model}/infer``), failing over and hedging exactly as ``faillite.client.Client`` does
(attempt timeouts from each app's SLO in the route table). Response headers ``Faillite-Node``
and ``Faillite-Model`` say which replica answered. ``GET /metrics``: requests and latency per
app, and the client's hedge counters (``faillite.gateway.metrics``).

Errors leave as OIP error bodies ``{"error": "..."}``, mapped in one place (``_errors``):
unknown app 404, no target within the deadline 503, an agent's refusal passed through as is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from faillite import __version__
from faillite.client.failover import Client, ControllerError, RawResponse, Unavailable, UnknownApp
from faillite.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from faillite.httpserve import ListenError, listening, stop_on_signals

__all__ = ["CLIENT_KEY", "READY_MESSAGE", "create_app", "serve"]

log = logging.getLogger("faillite.gateway")

# The local launcher waits for this line; the URL carries the real port (also for --port 0).
READY_MESSAGE = "faillite gateway ready on http://{host}:{port}"

CLIENT_KEY = web.AppKey("client", Client)

_HEADER_LENGTH = "Inference-Header-Content-Length"
# What an OIP body needs to be read. Not Content-Encoding: aiohttp has already decompressed
# the body on the way in (and the client decompresses answers), so it must not travel on.
_FORWARDED = ("Content-Type", _HEADER_LENGTH)


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnknownApp as exc:
        return _error(str(exc), 404)
    except Unavailable as exc:
        return _error(str(exc), 503)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text or exc.reason
        if exc.status in (404, 405):  # aiohttp's router: say what was asked for
            message = f"{exc.reason}: {request.method} {request.path}"
        return _error(message, exc.status)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return _error(f"internal error ({type(exc).__name__}); see the gateway's log", 500)


def _answer(response: RawResponse, body: bytes | None = None) -> web.Response:
    source = response.headers
    headers = CIMultiDict(
        [(name, source[name]) for name in _FORWARDED if name in source]
        + [("Faillite-Node", response.target.node), ("Faillite-Model", response.target.model)]
    )
    if body is not None:  # rewritten: the original length no longer applies
        headers.popall(_HEADER_LENGTH, None)
    return web.Response(status=response.status, body=response.body if body is None else body, headers=headers)


class GatewayRoutes:
    def __init__(self, client: Client, metrics: GatewayMetrics) -> None:
        self.client = client
        self.metrics = metrics

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v2/health/live", self.live)
        router.add_get("/v2/health/ready", self.server_ready)
        router.add_get("/v2", self.server_metadata)
        router.add_get("/v2/models/{app}", self.model_metadata)
        router.add_get("/v2/models/{app}/ready", self.model_ready)
        router.add_post("/v2/models/{app}/infer", self.infer)
        router.add_get("/metrics", self.prometheus)

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def server_ready(self, request: web.Request) -> web.Response:
        if self.client.routes is None:
            return _error("no route table from the controller yet", 503)
        return web.json_response({"ready": True})

    async def server_metadata(self, request: web.Request) -> web.Response:
        routes = self.client.routes
        return web.json_response(
            {
                "name": "faillite-gateway",
                "version": __version__,
                "extensions": ["binary_tensor_data"],
                "routes_version": None if routes is None else routes.version,
            }
        )

    async def model_ready(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        known = self.client.knows(app)
        if known is False:
            raise UnknownApp(app)
        if known is None or self.client.current_target(app) is None:
            return _error(f"app {app!r} has no serving target now", 503)
        return web.json_response({"name": app, "ready": True})

    async def model_metadata(self, request: web.Request) -> web.Response:
        app = request.match_info["app"]
        response = await self.client.metadata_raw(app)
        if response.status != 200:
            return _answer(response)
        try:
            metadata: Any = json.loads(response.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(f"{response.target.node} sent malformed model metadata", 502)
        metadata["name"] = app  # callers asked for the app; the variant is in Faillite-Model
        return _answer(response, json.dumps(metadata).encode())

    async def infer(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        app = request.match_info["app"]
        body = await request.read()
        headers: Mapping[str, str] = {k: request.headers[k] for k in _FORWARDED if k in request.headers}
        try:
            response = await self.client.infer_raw(app, body, headers)
        except Unavailable:
            self.metrics.observe(app, 503, time.perf_counter() - started)
            raise
        self.metrics.observe(app, response.status, time.perf_counter() - started)
        return _answer(response)


def create_app(client: Client, *, max_body_bytes: int = 64 * 1024 * 1024) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_errors])
    GatewayRoutes(client, GatewayMetrics(client)).register(app.router)
    app[CLIENT_KEY] = client
    return app


async def serve(
    client: Client,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    shutdown_timeout: float = 5.0,
) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); the exit status. Owns ``client``."""
    stop = stop or asyncio.Event()
    try:
        with stop_on_signals(stop):
            try:
                await client.start()
            except ControllerError as exc:
                log.error("%s", exc)
                return 1
            async with listening(create_app(client), host, port, shutdown_timeout=shutdown_timeout) as bound:
                log.info(READY_MESSAGE.format(host=host, port=bound))
                await stop.wait()
                log.info("faillite gateway stopping")
            return 0  # leaving the block let requests in flight finish (up to shutdown_timeout)
    except ListenError as exc:
        log.error("%s", exc)
        return 1
    finally:
        await client.close()
